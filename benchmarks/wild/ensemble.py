"""The bundled model, fine-tuned models and their two-member output ensembles (mean of the members' mirror-view
logits) per grouped fold, scored on validation data only: the fold's held-out SFEW films and CK+ subjects, and the
FER2013 train images of the bundled model's validation list (no fine-tuned model trained on them).

    python benchmarks/wild/ensemble.py --pack .gpu_yunet --ft ft='runs/wild_y/ft_f{fold}/weights.pt' \\
        lwf='runs/wild_y/lwf_f{fold}/weights.pt' --out benchmarks/results/wild_ensemble.json

The rule, fixed before any figure was seen: a candidate qualifies when its mean FER2013-validation accuracy and
macro-F1 over the folds are both at least the bundled model's; among those, the best mean SFEW held-out accuracy
wins if it is above the bundled model's on SFEW and CK+ too. FER2013 test is not read here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from final_ft import prepare  # noqa: E402
from gpu_data import CLASSES7  # noqa: E402
from gpu_jobs import W, rep_x  # noqa: E402
from gpu_train import logits_of, make_model, scores  # noqa: E402

REP = (48, "gray", "cubic")
SETS = ("fer_val", "sfew", "ck")


def _logits(state: dict, x: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    model = make_model(7, 1, "cpu")
    model.load_state_dict(state)
    return {s: logits_of(model, t).numpy() for s, t in x.items()}


def fold_scores(fold: int, ft: dict[str, str], vidx: torch.Tensor) -> dict[str, dict]:
    """Every candidate's scores on fold ``fold``: ``bundled``, each fine-tuned model, ``bundled+NAME``."""
    data = W["data"]
    idx = {"fer_val": vidx, **{s: torch.from_numpy(data.scored(s, fold)) for s in ("sfew", "ck")}}
    x = {s: rep_x("fer" if s == "fer_val" else s, REP)[i] for s, i in idx.items()}
    y = {s: np.asarray(data.y["fer" if s == "fer_val" else s])[i.numpy()] for s, i in idx.items()}
    z = {"bundled": _logits(W["init"], x)}
    for name, pattern in ft.items():
        z[name] = _logits(torch.load(pattern.format(fold=fold), weights_only=True), x)
        z[f"bundled+{name}"] = {s: (z["bundled"][s] + z[name][s]) / 2 for s in SETS}
    out = {c: {s: scores(zc[s], y[s], CLASSES7) for s in SETS} for c, zc in z.items()}
    for c, row in out.items():
        print(fold, c, {s: (round(row[s]["accuracy"], 4), round(row[s]["macro_f1"], 4)) for s in SETS}, flush=True)
    return out


def choose(per_fold: dict[int, dict]) -> dict:
    """Means over folds and the candidate the module's rule picks (``bundled`` when none qualifies)."""
    cands = list(next(iter(per_fold.values())))
    mean = {
        c: {
            f"{s}_{m}": float(np.mean([per_fold[f][c][s][m] for f in per_fold]))
            for s in SETS
            for m in ("accuracy", "macro_f1")
        }
        for c in cands
    }
    base = mean["bundled"]
    ok = [
        c for c in cands
        if c != "bundled"
        and mean[c]["fer_val_accuracy"] >= base["fer_val_accuracy"]
        and mean[c]["fer_val_macro_f1"] >= base["fer_val_macro_f1"]
        and mean[c]["sfew_accuracy"] > base["sfew_accuracy"]
        and mean[c]["ck_accuracy"] > base["ck_accuracy"]
    ]  # fmt: skip
    sd = {c: float(np.std([per_fold[f][c]["sfew"]["accuracy"] for f in per_fold])) for c in cands}
    return {"mean": mean, "sfew_sd": sd, "chosen": max(ok, key=lambda c: mean[c]["sfew_accuracy"]) if ok else "bundled"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path(".gpu_yunet"))
    ap.add_argument("--fer", type=Path, default=HERE.parents[2] / "shared" / "data" / "fer2013")
    ap.add_argument("--ft", nargs="+", required=True, help="NAME=PATTERN: a state dict per fold, {fold} in 0-4")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    ft = dict(item.split("=", 1) for item in a.ft)
    vidx = torch.from_numpy(prepare(a.pack, a.fer))
    per_fold = {f: fold_scores(f, ft, vidx) for f in range(5)}
    doc = {"per_fold": per_fold, **choose(per_fold)}
    for c, m in doc["mean"].items():
        print(f"{c:22s}", {k: round(v, 4) for k, v in m.items()}, "sfew sd", round(doc["sfew_sd"][c], 3))
    print("chosen:", doc["chosen"])
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
