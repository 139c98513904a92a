"""AU heads on CK+: subject-grouped 5-fold CV (inner 4-fold thresholds, bootstrap 95 % CIs over subjects) of the
shipped recipe and a few alternatives, all in one run.

    python benchmarks/au_ckplus.py [--cache runs/au_cache] [--data ../shared/data] [--seed 0]

Reuses :mod:`ferkit.training.au_heads` (the same code that trains the shipped heads). Arms: the default
``allframes_c0.03_fer580``; without the FER2013 neutral negatives; C=0.3; CK+ peak frames only. Writes
benchmarks/results/au_ckplus.json and prints a Markdown table (per AU: F1, 95 % CI, positives, median fold
threshold) for the default recipe, then one line per arm. ~1 min on 2 CPU cores once the landmark cache exists.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.training.au_data import DEFAULT_DATA, TARGET_AUS, load_data
from ferkit.training.au_heads import DEFAULT, RECIPES, cross_validate, summary

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "au_ckplus.json"


def main() -> None:
    """Run every arm, write the JSON, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("runs/au_cache"))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    d = load_data(a.data, a.cache)
    arms: dict[str, Any] = {}
    for name, recipe in RECIPES.items():
        t = time.time()
        cv = cross_validate(d, recipe, [a.seed])
        cv = {k: v for k, v in cv.items() if not k.startswith("_")}
        for v in cv["per_au"].values():
            if "fold_thresholds_repeat0" in v:
                v["median_fold_threshold"] = float(np.median(v["fold_thresholds_repeat0"]))
        arms[name] = cv | {"recipe": recipe.meta(), "secs": round(time.time() - t, 1)}
    result = {"seed": a.seed, "target_aus": list(TARGET_AUS), "default": DEFAULT.name, "arms": arms,
              "secs": round(time.time() - t0, 1)}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    base = arms[DEFAULT.name]
    thr = {au: v["median_fold_threshold"] for au, v in base["per_au"].items() if "median_fold_threshold" in v}
    print(f"## {DEFAULT.name} (subject-grouped 5-fold CV on the 153 CK+ peak frames; threshold: median over folds)\n")
    print(summary(base, thr))
    print("\n| recipe | mean F1 (12 target AUs) | 95 % CI | " + " | ".join(TARGET_AUS) + " |")
    print("|---|---|---|" + "---|" * len(TARGET_AUS))
    for name, cv in arms.items():
        lo, hi = cv["mean_target_ci95_repeat0"]
        f1s = " | ".join(f"{cv['per_au'][au]['f1_repeat0']:.2f}" for au in TARGET_AUS)
        print(f"| {name} | {cv['mean_target_f1']:.3f} | {lo:.2f}–{hi:.2f} | {f1s} |")
    print(f"\nwrote {OUT} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
