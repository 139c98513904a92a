"""Calibration figures: bias tuning and temperature scaling, fitted on a validation split, scored on FER2013 test.

    python benchmarks/calibration.py [--model ferkit] [--trials 200]

For each search method (grid, tpe, evolution) the model is calibrated with ``ferkit.api.calibrate`` on the
validation files its card lists (carved from fer2013/train; for the ``fer`` backend, which has no card, the bundled
model's validation list is used) — never on test — and then scored on fer2013/test before and after: accuracy,
macro-F1, balanced accuracy, per-class recall and ECE (15 bins). A second part shows the label-free mode: on a
subset of the validation files with known, deliberately skewed class ratios, treated as unlabelled, biases are
fitted to match those ratios (``objective=distribution``) on one half and the total-variation distance of the
predicted distribution to the truth is reported before and after on the other half.
Results: printed + benchmarks/results/calibration_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ferkit.api import calibrate
from ferkit.evaluation.scoring import evaluate, predict_dataset
from ferkit.models.calibration import Calibration, distribution_distance, make_objective, search_bias
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "fer2013"
#: Known ratios of the label-free experiment's subset (an interview-like mix: mostly neutral and happy).
SKEWED = {"angry": 40, "disgust": 10, "fear": 30, "happy": 300, "neutral": 400, "sad": 120, "surprise": 100}


def summary(block: dict) -> dict:
    keys = ("accuracy", "macro_f1", "balanced_accuracy", "ece")
    return {k: round(block[k], 4) for k in keys} | {
        "recall": {c: round(m["recall"], 4) for c, m in block["per_class"].items()}
    }


def labelled(model_name: str, val_split_from: str, trials: int, tmp: Path) -> dict:
    test = DATA / "test"
    raw = load_model(model_name, calibration=False)
    out = {"before": summary(evaluate(raw, test, crops=True))}
    print(f"{model_name} raw on test: {out['before']}")
    # The fer backend has no card: borrow the bundled model's validation list by copying those files aside.
    if val_split_from != model_name:
        files = load_model(val_split_from, calibration=False).card.extra["training"]["validation_files"]
        val = tmp / "val"
        for f in files:
            (val / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DATA / "train" / f, val / f)
        dataset, split = val, "all"
    else:
        dataset, split = DATA / "train", "validation"
    for method in ("grid", "tpe", "evolution"):
        t0 = time.perf_counter()
        path, cal = calibrate(
            model_name, dataset, crops=True, split=split, method=method, trials=trials, output=tmp / f"{method}.json"
        )
        fit_s = time.perf_counter() - t0
        after = summary(evaluate(load_model(model_name, calibration=path), test, crops=True))
        out[method] = {
            "bias": dict(zip(cal.classes, cal.bias, strict=True)),
            "temperature": cal.temperature,
            "bias_kept": cal.fitted_on.get("bias_kept", True),
            "holdout_objective_gain": cal.fitted_on.get("holdout_objective_gain"),
            "validation_holdout": {"before": cal.metrics["before"], "after": cal.metrics["after"]},
            "seconds_incl_logits": round(fit_s, 1),
            "test_after": after,
        }
        print(f"{method}: bias kept {out[method]['bias_kept']}, T={cal.temperature:.3f}, test after {after}")
    return out


def label_free(model_name: str, trials: int, tmp: Path) -> dict:
    """Fit biases to known ratios on one half of a skewed subset of the bundled model's validation files (never
    test), treated as unlabelled; score the predicted distribution on the other half."""
    subset = tmp / "skewed"
    files = load_model("ferkit", calibration=False).card.extra["training"]["validation_files"]
    for c, n in SKEWED.items():
        (subset / c).mkdir(parents=True, exist_ok=True)
        for f in sorted(f for f in files if f.startswith(f"{c}/"))[:n]:
            shutil.copy(DATA / "train" / f, subset / f)
    model = load_model(model_name, calibration=False)
    pred = predict_dataset(model, subset, crops=True)
    target = np.array([SKEWED[c] for c in model.classes], float)
    target /= target.sum()
    y = np.array([model.classes.index(t) for t in pred.y_true])
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    fit, held = order[: len(y) // 2], order[len(y) // 2 :]
    res = {"target": dict(zip(model.classes, target.round(4).tolist(), strict=True)), "n": len(y)}
    from ferkit.models.calibration import fit_calibration

    for method in ("grid", "tpe", "evolution"):
        cal: Calibration = fit_calibration(
            pred.raw_logits[fit],
            model.classes,
            model.sha256,
            objective="distribution",
            method=method,
            target=target,
            trials=trials,
        )
        before = distribution_distance(pred.raw_logits[held].argmax(1), target)
        after = distribution_distance(cal.apply(pred.raw_logits[held]).argmax(1), target)
        acc_b = float((pred.raw_logits[held].argmax(1) == y[held]).mean())
        acc_a = float((cal.apply(pred.raw_logits[held]).argmax(1) == y[held]).mean())
        t0 = time.perf_counter()
        search_bias(pred.raw_logits, make_objective("macro_f1", y), method, trials=100)
        search_s = time.perf_counter() - t0
        res[method] = {
            "search_seconds_100_macro_f1_trials": round(search_s, 2),
            "tv_distance_before": round(before, 4),
            "tv_distance_after": round(after, 4),
            "accuracy_before": round(acc_b, 4),
            "accuracy_after": round(acc_a, 4),
        }
        print(
            f"label-free {method}: TV distance {before:.3f} -> {after:.3f}, accuracy {acc_b:.3f} -> {acc_a:.3f}; "
            f"100 macro-F1 trials on {len(y)} cached logits: {search_s:.2f} s"
        )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ferkit")
    ap.add_argument("--trials", type=int, default=200)
    args = ap.parse_args()
    split_from = args.model if args.model != "fer" else "ferkit"
    with tempfile.TemporaryDirectory() as d:
        doc = {
            "command": f"python benchmarks/calibration.py --model {args.model} --trials {args.trials}",
            "model": args.model,
            "model_sha256": load_model(args.model, calibration=False).sha256,
            "labelled": labelled(args.model, split_from, args.trials, Path(d)),
            "label_free": label_free(args.model, args.trials, Path(d)),
        }
    out = HERE / "results" / f"calibration_{args.model}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(out)


if __name__ == "__main__":
    main()
