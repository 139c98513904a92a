"""Accuracy, macro-F1, per-class recall and ECE of a model on FER2013 test (7,178 crops, ``--crops`` path).

    python benchmarks/fer2013_eval.py [--model ferkit] [--data ../shared/data/fer2013/test] [--tta none flip flip_shift]

Same code path as ``ferkit evaluate DATA --crops [--tta MODE]``; for each test-time augmentation mode, scored twice
when the model has a calibration (raw scores, then as shipped with its ``calibration.json``). Results: printed +
benchmarks/results/fer2013_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ferkit.evaluation.scoring import evaluate, report
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "fer2013" / "test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ferkit")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--tta", nargs="+", default=["none", "flip", "flip_shift"], help="test-time augmentation modes")
    args = ap.parse_args()
    blocks = []
    models = {c: load_model(args.model, calibration=c) for c in (False, True)}  # loaded (and hash-checked) once
    for tta, calibration in ((t, c) for t in args.tta for c in (False, True)):
        model = models[calibration]
        if calibration and model.calibration is None:
            continue
        model.tta = tta
        t0 = time.perf_counter()
        block = evaluate(model, Path(args.data), crops=True)
        dt = time.perf_counter() - t0
        blocks.append(block)
        print(
            f"{model.name} ({'calibrated' if calibration else 'raw'}, tta {tta}) on {args.data}: n={block['n']} "
            f"accuracy={block['accuracy']:.4f} macro-F1={block['macro_f1']:.4f} "
            f"balanced={block['balanced_accuracy']:.4f} ECE={block['ece']:.4f} ({dt:.1f} s incl. image reading)"
        )
        for c, m in block["per_class"].items():
            print(
                f"  {c:9s} recall {m['recall']:.3f}  precision {m['precision']:.3f}  f1 {m['f1']:.3f}  n={m['support']}"
            )
    out = HERE / "results" / f"fer2013_{Path(args.model).name}.json"
    out.parent.mkdir(exist_ok=True)
    command = f"python benchmarks/fer2013_eval.py --tta {' '.join(args.tta)}"
    out.write_text(json.dumps({"command": command, **report(blocks)}, indent=1))
    print(out)


if __name__ == "__main__":
    main()
