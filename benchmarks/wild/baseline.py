"""The bundled model on the GPU run's protocol: the same held-out SFEW films and CK+ subjects per fold (5 folds),
and FER2013 test, mirror-view average, uncalibrated — the row the ablation arms are compared with.

    python benchmarks/wild/baseline.py --pack .gpu --out benchmarks/results/wild_baseline.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]

import torch  # noqa: E402
from gpu_data import N_FOLDS, data_root, decode_pack  # noqa: E402
from gpu_jobs import W, evaluate, init_worker  # noqa: E402
from gpu_train import make_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path(".gpu"))
    ap.add_argument("--weights", type=Path, help="a state dict (default: the bundled model, bundled_init.pt)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    root = data_root(a.pack)
    decode_pack(a.pack, root)
    init_worker(str(root), "cpu", False, str(a.pack / "b" / "bundled_init.pt"))
    model = make_model(7, 1, "cpu")
    model.load_state_dict(torch.load(a.weights, weights_only=True) if a.weights else W["init"])
    rows = {}
    for fold in range(N_FOLDS):
        m, _ = evaluate(model, (48, "gray", "cubic"), fold, 7)
        rows[f"f{fold}"] = m
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1))
    for s in ("sfew", "ck", "fert"):
        acc = [rows[f][s]["accuracy"] for f in rows]
        print(s, [round(x, 3) for x in acc], round(sum(acc) / len(acc), 4))


if __name__ == "__main__":
    main()
