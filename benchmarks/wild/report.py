"""The issue-18 ablation table (markdown) from a GPU run's results.json, the bundled model's row on the same folds
(baseline.py) and the labelled-clip scores (clips_eval.py).

    python benchmarks/wild/report.py --run benchmarks/results/wild_gpu_run2/results.json \
        --baseline benchmarks/results/wild_baseline.json --clips benchmarks/results/wild_clips.json
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

ROWS = {  # arm: what it changes against the row above it or the reference
    "bundled": "the shipped model, unchanged (reference)",
    "fer48g": "FER2013 only, 48 px gray, from scratch",
    "mix48g": "+ SFEW + CK+ (shares 0.75/0.15/0.10)",
    "mix64g_cubic": "64 px, FER2013 upscaled bicubic",
    "mix64g_lanczos": "64 px, Lanczos",
    "mix64g_sr": "64 px, learned SR net",
    "mix64rgb_cubic": "64 px RGB (FER2013 gray replicated)",
    "mix64g_basic6": "64 px, six classes (no neutral)",
    "prog64g": "64 px, progressive by similarity to film faces",
    "pseudo_thresh": "64 px + clip faces, pseudo-labels ≥ 0.7",
    "pseudo_robust": "64 px + clip faces, robust (GCE + entropy)",
    "student": "distilled from the fold ensemble, scratch, 30 ep",
    "ft48g": "bundled weights fine-tuned on FER2013 + SFEW + CK+",
    "student_ft": "distilled from the fold ensemble, from bundled, 30 ep",
}


def _ms(v: list[float]) -> str:
    return f"{np.mean(v):.3f} ± {np.std(v):.3f}" if v else "—"


def table(run: dict, baseline: dict | None, clips: dict | None) -> str:
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # arm -> metric -> seed -> values
    secs: dict = defaultdict(list)
    for j in run["jobs"].values():
        if "metrics" not in j or j.get("fold", -1) < 0:
            continue
        arm, seed, m = j["arm"], j["seed"], j["metrics"]
        for s in ("sfew", "ck", "fert"):
            acc[arm][s][seed].append(m[s]["accuracy"])
        acc[arm]["fert_f1"][seed].append(m["fert"]["macro_f1"])
        if "six_class" in m["sfew"]:
            acc[arm]["sfew6"][seed].append(m["sfew"]["six_class"]["accuracy"])
        elif arm == "mix64g_basic6":
            acc[arm]["sfew6"][seed].append(m["sfew"]["accuracy"])
        secs[arm].append(j["seconds"])
    if baseline:
        for f in baseline.values():
            for s in ("sfew", "ck", "fert"):
                acc["bundled"][s][0].append(f[s]["accuracy"])
            acc["bundled"]["fert_f1"][0].append(f["fert"]["macro_f1"])
            acc["bundled"]["sfew6"][0].append(f["sfew"]["six_class"]["accuracy"])
    head = (
        "| arm | what changes | SFEW film-held-out acc (seed 0 / seed 1) | six-class SFEW | CK+ subject-held-out | "
        "FER2013 test acc | FER2013 test macro-F1 | clips: clip / frame acc (fold 0) | GPU s/model |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for arm, what in ROWS.items():
        if arm not in acc:
            continue
        a = acc[arm]

        def per_seed(k: str, a: dict = a) -> str:
            return " / ".join(_ms(a[k][s]) for s in sorted(a[k]))

        fert = [x for s in a["fert"] for x in a["fert"][s]]
        f1 = [x for s in a["fert_f1"] for x in a["fert_f1"][s]]
        c = _clip(clips, arm)
        lines.append(
            f"| `{arm}` | {what} | {per_seed('sfew')} | {per_seed('sfew6')} | {per_seed('ck')} | {_ms(fert)} | "
            f"{_ms(f1)} | {c} | {np.mean(secs[arm]):.0f} |"
            if secs[arm]
            else f"| `{arm}` | {what} | {per_seed('sfew')} | {per_seed('sfew6')} | {per_seed('ck')} | {_ms(fert)} | "
            f"{_ms(f1)} | {c} | — |"
        )
    return head + "\n".join(lines) + "\n"


def _clip(clips: dict | None, arm: str) -> str:
    if not clips:
        return "—"
    key = next((k for k in clips if f"/{arm}/f0" in k or (arm == "bundled" and k.endswith("models/ferkit"))), None)
    if key is None:
        return "—"
    r = clips[key]
    return f"{r['clips']['accuracy']:.3f} / {r['frames']['accuracy']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--baseline", type=Path)
    ap.add_argument("--clips", type=Path)
    a = ap.parse_args()
    load = lambda p: json.loads(p.read_text()) if p else None  # noqa: E731
    print(table(load(a.run), load(a.baseline), load(a.clips)))


if __name__ == "__main__":
    main()
