"""The expressive-vs-neutral gate trained with and without occlusion augmentation (issue 15, item 3).

    python benchmarks/gate_occlusion.py [--variants none,erasing,gridmask,both]

Builds the gate (``python -m ferkit.training.gate build``) on the bundled model's embeddings once per variant —
no occlusion (the shipped recipe), one random-erasing copy of every training crop, one GridMask copy, or half each —
into a temporary folder, and reports balanced accuracy and macro-F1 on the base model's validation files clean and
occluded (random erasing; GridMask; fixed seed, the same faces for every variant) and on FER2013 test (clean).
Results: benchmarks/results/gate_occlusion.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FER = HERE.parent.parent / "shared" / "data" / "fer2013"


def main() -> None:
    from ferkit.training.gate import build

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="none,erasing,gridmask,both")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for how in args.variants.split(","):
            t0 = time.perf_counter()
            card = build("ferkit", FER, Path(tmp) / f"gate_{how}", "expressive_vs_neutral", FER / "test", how)
            row = {"occlusion": how, "seconds": round(time.perf_counter() - t0, 1), "sha256": card["sha256"]}
            row.update({k: {m: round(v, 4) for m, v in s.items()} for k, s in card["metrics"].items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = HERE / "results" / "gate_occlusion.json"
    out.write_text(json.dumps({"command": f"python benchmarks/gate_occlusion.py --variants {args.variants}",
                               "rows": rows}, indent=1))  # fmt: skip
    print(out)


if __name__ == "__main__":
    main()
