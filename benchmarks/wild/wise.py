"""Weight-space interpolation between the bundled weights and a fine-tuned model (WiSE-FT, Wortsman et al. 2022):
θ(α) = (1 − α)·θ_v1 + α·θ_ft, scored per α on the held-out SFEW films / CK+ subjects of a fold, on FER2013 train
images of v1's validation list (neither model trained on them) and, with ``--test``, on FER2013 test.

    python benchmarks/wild/wise.py --ft 'runs/wild_ft48g_f{fold}/weights.pt' --out benchmarks/results/wild_wise.json
    python benchmarks/wild/wise.py --ft runs/wild_ft48g/weights.pt --alphas 0.75 --save runs/wild_wise/weights.pt
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
from gpu_jobs import W, evaluate, rep_x  # noqa: E402
from gpu_train import logits_of, make_model, scores  # noqa: E402

REP = (48, "gray", "cubic")


def mix(v1: dict, ft: dict, alpha: float) -> dict:
    return {k: (1 - alpha) * v1[k].float() + alpha * ft[k].float() if v1[k].is_floating_point() else ft[k] for k in v1}


def score_alphas(ft: dict, alphas: list[float], fold: int, test: bool, vidx: torch.Tensor, yv: np.ndarray) -> dict:
    rows = {}
    for alpha in alphas:
        model = make_model(7, 1, "cpu")
        model.load_state_dict(mix(W["init"], ft, alpha))
        row = {"fer_val": scores(logits_of(model, rep_x("fer", REP)[vidx]).numpy(), yv, CLASSES7)}
        if fold >= 0 or test:
            m, _ = evaluate(model, REP, max(fold, 0), 7)
            row |= {"sfew": m["sfew"], "ck": m["ck"]} if fold >= 0 else {}
            row |= {"fert": m["fert"]} if test else {}
        rows[alpha] = row
        print(fold, alpha, {k: (round(v["accuracy"], 4), round(v["macro_f1"], 4)) for k, v in row.items()}, flush=True)
    return rows


def choose(per_fold: dict[int, dict]) -> dict:
    """Mean over folds per alpha, and the alpha with the best mean SFEW accuracy among those that keep the FER2013
    validation accuracy and macro-F1 of the shipped weights (alpha 0): validation data only, never FER2013 test."""
    alphas = sorted(next(iter(per_fold.values())))
    mean = {
        al: {
            f"{s}_{m}": float(np.mean([per_fold[f][al][s][m] for f in per_fold]))
            for s in ("fer_val", "sfew", "ck")
            for m in ("accuracy", "macro_f1")
        }
        for al in alphas
    }
    base = mean[alphas[0]]
    ok = [al for al in alphas if mean[al]["fer_val_accuracy"] >= base["fer_val_accuracy"]]
    ok = [al for al in ok if mean[al]["fer_val_macro_f1"] >= base["fer_val_macro_f1"]] or [alphas[0]]
    return {"mean": mean, "chosen_alpha": max(ok, key=lambda al: mean[al]["sfew_accuracy"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path(".gpu"))
    ap.add_argument("--fer", type=Path, default=HERE.parents[2] / "shared" / "data" / "fer2013")
    ap.add_argument("--ft", help="fine-tuned state dict, or a pattern with {fold} for one per fold (0-4)")
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.625, 0.75, 0.875, 1.0])
    ap.add_argument("--test", action="store_true", help="also score FER2013 test (final measurement only)")
    ap.add_argument("--save", type=Path, help="with one --ft and one alpha: write the interpolated state dict")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    vidx = torch.from_numpy(prepare(a.pack, a.fer))
    yv = np.asarray(W["data"].y["fer"])[vidx.numpy()]
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    if "{fold}" in a.ft:
        per_fold = {f: score_alphas(load(a.ft.format(fold=f)), a.alphas, f, False, vidx, yv) for f in range(5)}
        doc = {"per_fold": per_fold, **choose(per_fold)}
        print("chosen alpha", doc["chosen_alpha"], json.dumps(doc["mean"][doc["chosen_alpha"]]))
    else:
        doc = score_alphas(load(a.ft), a.alphas, -1, a.test, vidx, yv)
        if a.save:
            a.save.parent.mkdir(parents=True, exist_ok=True)
            torch.save(mix(W["init"], load(a.ft), a.alphas[0]), a.save)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
