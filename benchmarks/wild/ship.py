"""Turn the final fine-tuned weights (final_ft.py) into a model folder with its card, and measure it as shipped.

    python benchmarks/wild/ship.py export --run runs/wild_ft48g \
        --gpu-run benchmarks/results/wild_gpu_run2/results.json --out runs/wild_ft48g/model --name ferkit
    ferkit calibrate ../shared/data/fer2013/train --crops --split validation --model runs/wild_ft48g/model
    python benchmarks/wild/ship.py measure --model runs/wild_ft48g/model

``ensemble``: the bundled weights and a final fine-tuned model (final_ft.py on a YuNet pack) as one ONNX graph that
averages their logits (``clips_eval.MeanOfMembers``; the embedding output is the bundled model's, so the gates built
on it read the same features), with the fold figures of ``ensemble.py`` on its card:

    python benchmarks/wild/ship.py ensemble --run runs/wild_y/ft_final --member ft \
        --folds benchmarks/results/wild_ensemble.json --out src/ferkit/assets/models/ferkit-wild2 --name ferkit-wild2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from clips_eval import export_folder  # noqa: E402

ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared" / "data"
V1 = ROOT / "src" / "ferkit" / "assets" / "models" / "ferkit" / "card.json"


def _cv(run: dict, arm: str) -> dict:
    """Per-seed fold scores of ``arm`` in a GPU run: SFEW films and CK+ subjects held out, FER2013 test."""
    out: dict = {}
    for j in run["jobs"].values():
        if j.get("arm") == arm and "metrics" in j and j["fold"] >= 0:
            for s in ("sfew", "ck", "fert"):
                out.setdefault(s, {}).setdefault(f"seed{j['seed']}", {})[f"fold{j['fold']}"] = round(
                    j["metrics"][s]["accuracy"], 4
                )
    for seeds in out.values():
        vals = [v for d in seeds.values() for v in d.values()]
        seeds["mean"], seeds["sd"] = round(float(np.mean(vals)), 4), round(float(np.std(vals)), 4)
    return out


def n_params(*states: dict) -> int:
    """Learned parameters of state dicts (batch-norm running statistics and counters left out)."""
    skip = ("running_mean", "running_var", "tracked")
    return int(sum(t.numel() for st in states for k, t in st.items() if not k.endswith(skip)))


def export(a: argparse.Namespace) -> None:
    summary = json.loads((a.run / "summary.json").read_text())
    run = json.loads(a.gpu_run.read_text())
    v1 = json.loads(V1.read_text())
    state = torch.load(a.run / "weights.pt", weights_only=True)
    params = n_params(state)
    card_extra = {
        "version": "2",
        "preprocessing": v1["preprocessing"],
        "architecture": {"backbone": "vgg_small", "options": {}, "parameters": params, "flip_tta": False},
        "inference": v1["inference"],
        "training": {
            "recipe": "ft48g: the v1 bundled weights (ferkit v1, sha256 " + v1["sha256"] + ") fine-tuned on three "
            "sources mixed per batch by share; AdamW, one-cycle cosine, EMA, level-2 augmentation at strength 0.7, "
            "class-weighted CE (N/n_c)^0.5 with label smoothing 0.1",
            "sources": {
                "fer2013": f"../shared/data/fer2013/train minus copies of test images and repeats "
                f"({summary['fer_train_images']} images; the {summary['fer_held_validation_images']} images of v1's "
                "validation list held out for calibration), share 0.75",
                "sfew": "../shared/data/sfew/train: 837 faces of 47 films found by BlazeFace and aligned like "
                "`ferkit evaluate` (23 of 860 images without a detected face), every film, share 0.15",
                "ckplus": "../shared/data/ckplus_au: 432 crops of 51 subjects (contempt left out), share 0.10",
            },
            "hp": summary["hp"],
            "epochs": summary["epochs"],
            "seed": summary["seed"],
            "device": summary["device"],
            "train_seconds": summary["train_seconds"],
            "validation_files": v1["training"]["validation_files"],
            "reproduce": [
                "python benchmarks/wild/pack.py --out .gpu && python benchmarks/wild/bundled_init.py",
                "python benchmarks/wild/final_ft.py --pack .gpu --out runs/wild_ft48g",
                "python benchmarks/wild/ship.py export --run runs/wild_ft48g --gpu-run "
                "benchmarks/results/wild_gpu_run2/results.json --out runs/wild_ft48g/model --name ferkit",
                "ferkit calibrate ../shared/data/fer2013/train --crops --split validation "
                "--model runs/wild_ft48g/model",
                "python benchmarks/wild/ship.py measure --model runs/wild_ft48g/model",
            ],
        },
        "metrics": {
            "cross_validation": {
                "protocol": "the same recipe trained 10 times (5 grouped folds x seeds 0, 1) on a GPU "
                "(benchmarks/wild/gpu_run.py): fold k holds out the SFEW films and the CK+ subjects of fold k; mirror "
                "view, uncalibrated; the shipped weights are that recipe on every fold",
                "ft48g": _cv(run, "ft48g"),
                "v1_same_folds": "benchmarks/results/wild_baseline.json",
            },
        },
    }
    export_folder(state, [48, "gray"], a.out, a.name, card_extra)
    print(f"wrote {a.out}")


def ensemble(a: argparse.Namespace) -> None:
    summary = json.loads((a.run / "summary.json").read_text())
    folds = json.loads(a.folds.read_text())
    v1 = json.loads(V1.read_text())
    members = [
        torch.load(a.pack / "b" / "bundled_init.pt", weights_only=True),
        torch.load(a.run / "weights.pt", weights_only=True),
    ]
    params = n_params(*members)
    cand, lwf = f"bundled+{a.member}", "lwf" in summary["recipe"]
    per_fold = lambda c, s: [round(folds["per_fold"][f][c][s]["accuracy"], 4) for f in sorted(folds["per_fold"])]  # noqa: E731
    card_extra = {
        "version": "2",
        "preprocessing": v1["preprocessing"],
        "outputs": {
            "logits": "the mean of the two members' class scores",
            "embedding": "the first member's (v1) pooled features",
        },
        "architecture": {
            "backbone": "vgg_small", "options": {}, "parameters": params, "flip_tta": False,
            "ensemble": "two vgg_small members on the same input in one graph, logits averaged: the v1 bundled model "
            f"(ferkit, sha256 {v1['sha256']}) and v1 fine-tuned on FER2013 + SFEW + CK+ ({summary['recipe']})",
        },
        "inference": v1["inference"],
        "training": {
            "members": {
                "v1": "the bundled model `ferkit`, unchanged (its card: training, split, figures)",
                "fine_tuned": {
                    "recipe": summary["recipe"] + ": the v1 weights fine-tuned on three sources mixed per batch by "
                    "share; AdamW, one-cycle cosine, EMA, level-2 augmentation at strength 0.7, class-weighted CE "
                    "(N/n_c)^0.5 with label smoothing 0.1" + (", plus the KL to v1 on FER2013 (alpha)" if lwf else ""),
                    "sources": {
                        "fer2013": f"../shared/data/fer2013/train minus copies of test images and repeats "
                        f"({summary['fer_train_images']} images; the {summary['fer_held_validation_images']} images of "
                        "v1's validation list held out), share 0.75",
                        "sfew": "../shared/data/sfew/train: faces found and aligned by YuNet as `ferkit evaluate` does "
                        "(benchmarks/wild/pack.py), every film, share 0.15",
                        "ckplus": "../shared/data/ckplus_au: 432 crops of 51 subjects (contempt left out), share 0.10",
                    },
                    "hp": summary["hp"], "epochs": summary["epochs"], "seed": summary["seed"],
                    "device": summary["device"], "train_seconds": summary["train_seconds"],
                },
            },
            "validation_files": v1["training"]["validation_files"],
            "reproduce": [
                "python benchmarks/wild/pack.py --out .gpu_yunet && cp .gpu/b/bundled_init.pt .gpu_yunet/b/ "
                "(or python benchmarks/wild/bundled_init.py --out .gpu_yunet/b/bundled_init.pt)",
                "for f in 0 1 2 3 4: python benchmarks/wild/final_ft.py --pack .gpu_yunet --fold $f "
                "--out runs/wild_y/ft_f$f; the same with --lwf 0.5 --out runs/wild_y/lwf_f$f",
                "python benchmarks/wild/ensemble.py --pack .gpu_yunet --ft ft='runs/wild_y/ft_f{fold}/weights.pt' "
                "--out benchmarks/results/wild_ensemble.json  (the choice; with "
                "lwf='runs/wild_y/lwf_f{fold}/weights.pt' added: wild_ensemble_lwf.json, the same choice)",
                f"python benchmarks/wild/final_ft.py --pack .gpu_yunet{' --lwf 0.5' if lwf else ''} --out {a.run}",
                f"python benchmarks/wild/ship.py ensemble --run {a.run} --member {a.member} --folds {a.folds} "
                f"--out OUT --name {a.name}",
                "ferkit calibrate ../shared/data/fer2013/train --crops --split validation --model OUT",
                "python benchmarks/wild/ship.py measure --model OUT",
            ],
        },
        "metrics": {
            "cross_validation": {
                "protocol": "5 grouped folds (benchmarks/wild/ensemble.py): the fine-tuned member trained without the "
                "SFEW films and CK+ subjects of fold k, scored on them and on v1's 2,695 FER2013 validation images; "
                "mirror view, uncalibrated; the rule that chose this candidate is in ensemble.py's docstring",
                "chosen": folds["chosen"],
                "this_recipe": {s: per_fold(cand, s) for s in ("fer_val", "sfew", "ck")},
                "v1_same_folds": {s: per_fold("bundled", s) for s in ("fer_val", "sfew", "ck")},
                "means": {c: folds["mean"][c] for c in ("bundled", a.member, cand)},
            },
        },
    }  # fmt: skip
    export_folder(members, [48, "gray"], a.out, a.name, card_extra)
    print(f"wrote {a.out}")


def measure(a: argparse.Namespace) -> None:
    from ferkit.api import evaluate

    card_path = a.model / "card.json"
    card = json.loads(card_path.read_text())
    m = card.setdefault("metrics", {})
    test = SHARED / "fer2013" / "test"
    shipped = evaluate(test, models=[str(a.model)], crops=True)["results"][0]
    raw = evaluate(test, models=[str(a.model)], crops=True, calibration=False, tta="none")["results"][0]
    raw_flip = evaluate(test, models=[str(a.model)], crops=True, calibration=False, tta="flip")["results"][0]
    clips = evaluate(SHARED / "video_labelled", models=[str(a.model)])["results"][0]
    pick = lambda b: {k: b[k] for k in ("n", "accuracy", "macro_f1", "balanced_accuracy", "per_class")}  # noqa: E731
    m["fer2013_test_as_shipped"] = pick(shipped)
    m["fer2013_test"] = pick(raw)
    m["fer2013_test_raw_flip"] = pick(raw_flip)
    m["video_labelled_as_shipped"] = {
        "frames": {k: clips[k] for k in ("n", "accuracy", "macro_f1")},
        "clips": {k: clips["clip_level"][k] for k in ("n", "accuracy", "macro_f1")},
        "per_clip": {r["true"]: r["predicted"] for r in clips["per_clip"]},
        "skipped_classes": clips.get("skipped_classes"),
    }
    m["metrics_note"] = (
        "as shipped: calibration.json applied, mirror view for stills (--tta auto; none for video); fer2013_test: one "
        "raw pass; fer2013_test_raw_flip: uncalibrated, mirror view; video_labelled: evaluation only, never trained or "
        "tuned on"
    )
    card_path.write_text(json.dumps(card, indent=1))
    print(
        json.dumps(
            {k: (v.get("accuracy"), v.get("macro_f1")) for k, v in m.items() if isinstance(v, dict) and "accuracy" in v}
        )
    )
    print(json.dumps(m["video_labelled_as_shipped"]))
    load = f"import ferkit; ferkit.load_model({str(a.model)!r})"  # the folder loads as a model (hash checked)
    subprocess.run([sys.executable, "-c", load], check=True)  # noqa: S603


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--run", type=Path, required=True)
    e.add_argument("--gpu-run", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--name", default="ferkit")
    n = sub.add_parser("ensemble")
    n.add_argument("--run", type=Path, required=True, help="final_ft.py output: weights.pt + summary.json")
    n.add_argument("--member", default="ft", help="the candidate's name in --folds (bundled+NAME)")
    n.add_argument("--folds", type=Path, default=Path("benchmarks/results/wild_ensemble.json"))
    n.add_argument("--pack", type=Path, default=Path(".gpu_yunet"))
    n.add_argument("--out", type=Path, required=True)
    n.add_argument("--name", default="ferkit-wild2")
    m = sub.add_parser("measure")
    m.add_argument("--model", type=Path, required=True)
    a = ap.parse_args()
    {"export": export, "ensemble": ensemble, "measure": measure}[a.cmd](a)


if __name__ == "__main__":
    main()
