"""Weight-space interpolation between the bundled weights and a fine-tuned model (WiSE-FT, Wortsman et al. 2022):
θ(α) = (1 − α)·θ_v1 + α·θ_ft, scored per α on the held-out SFEW films / CK+ subjects of a fold, on FER2013 train
images of v1's validation list (neither model trained on them) and, with ``--test``, on FER2013 test.

    python benchmarks/wild/wise.py --ft runs/wild_ft48g_f0/weights.pt --fold 0
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from final_ft import CARD, kept_fer_files  # noqa: E402
from gpu_data import CLASSES7, decode_pack  # noqa: E402
from gpu_run import W, evaluate, init_worker, rep_x  # noqa: E402
from gpu_train import logits_of, make_model, scores  # noqa: E402

REP = (48, "gray", "cubic")


def mix(v1: dict, ft: dict, alpha: float) -> dict:
    return {k: (1 - alpha) * v1[k].float() + alpha * ft[k].float() if v1[k].is_floating_point() else ft[k] for k in v1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path(".gpu"))
    ap.add_argument("--fer", type=Path, default=HERE.parents[2] / "shared" / "data" / "fer2013")
    ap.add_argument("--ft", type=Path, required=True, help="fine-tuned state dict")
    ap.add_argument("--fold", type=int, default=-1, help="held-out fold of the fine-tuned model (-1: none)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.625, 0.75, 1.0])
    ap.add_argument("--test", action="store_true", help="also score FER2013 test (final measurement only)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    root = Path(tempfile.gettempdir()) / "wild_data"
    decode_pack(a.pack, root)
    init_worker(str(root), "cpu", False, str(a.pack / "b" / "bundled_init.pt"))
    ft = torch.load(a.ft, weights_only=True)
    ft = ft.get("state", ft)
    files = kept_fer_files(a.fer)
    val = set(json.loads(CARD.read_text())["training"]["validation_files"])
    vidx = torch.tensor([i for i, f in enumerate(files) if f in val])
    yv = np.asarray(W["data"].y["fer"])[vidx.numpy()]
    rows = {}
    for alpha in a.alphas:
        model = make_model(7, 1, "cpu")
        model.load_state_dict(mix(W["init"], ft, alpha))
        row = {"fer_val": scores(logits_of(model, rep_x("fer", REP)[vidx]).numpy(), yv, CLASSES7)}
        if a.fold >= 0 or a.test:
            m, _ = evaluate(model, REP, max(a.fold, 0), 7)
            if a.fold >= 0:
                row |= {"sfew": m["sfew"], "ck": m["ck"]}
            if a.test:
                row["fert"] = m["fert"]
        rows[alpha] = row
        print(alpha, {k: (round(v["accuracy"], 4), round(v["macro_f1"], 4)) for k, v in row.items()}, flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
