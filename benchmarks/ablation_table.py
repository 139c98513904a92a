"""Collect the imbalance ablation (``ferkit train-batch configs/ablation``) into a markdown table and JSON.

    ferkit train-batch configs/ablation --summary runs/ablation_summary.json   # ~8 min per config on 2 CPU cores
    python benchmarks/ablation_table.py [--runs runs/ablation]

Reads each run's exported card (FER2013 test metrics, scored at export) and history (best validation macro-F1).
Writes benchmarks/results/ablation.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
MINORITY = ["disgust", "fear", "surprise", "angry"]  # the smallest FER2013 classes, and fear (the hardest)


def collect(runs: Path) -> list[dict]:
    rows = []
    for card_path in sorted(runs.glob("*/model/card.json")):
        card = json.loads(card_path.read_text())
        run = card_path.parent.parent
        history = json.loads((run / "history.json").read_text())
        cfg = card["training"]["config"]
        test = card["metrics"]["fer2013_test"]
        rows.append(
            {
                "run": run.name,
                "sampler": cfg["imbalance"]["sampler"],
                "class_weights": cfg["imbalance"]["class_weights"],
                "loss": "ce→focal" if cfg["imbalance"]["focal_from_epoch"] is not None else cfg["imbalance"]["loss"],
                "augment": f"{cfg['augment']['level']}"
                + (f" (minority {cfg['augment']['minority_level']})" if cfg["augment"]["minority_level"] else ""),
                "epochs": len(history),
                "best_val_macro_f1": max(h["val_macro_f1"] for h in history),
                "test_accuracy": test["accuracy"],
                "test_macro_f1": test["macro_f1"],
                "test_balanced_accuracy": test.get("balanced_accuracy"),
                "test_recall": {c: test["per_class"][c]["recall"] for c in test["per_class"]},
                "train_count": card["training"]["train_count"],
            }
        )
    return rows


def table(rows: list[dict]) -> str:
    head = (
        "| run | sampler | class weights | loss | augment | test acc | test macro-F1 | "
        + " | ".join(f"recall {c}" for c in MINORITY)
        + " |"
    )
    lines = [head, "|" + "---|" * (7 + len(MINORITY))]
    for r in rows:
        rec = " | ".join(f"{r['test_recall'][c]:.3f}" for c in MINORITY)
        lines.append(
            f"| {r['run']} | {r['sampler']} | {r['class_weights']} | {r['loss']} | {r['augment']} | "
            f"{r['test_accuracy']:.3f} | {r['test_macro_f1']:.3f} | {rec} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ablation.json")
    args = ap.parse_args()
    rows = collect(args.runs)
    if not rows:
        raise SystemExit(f"no exported runs under {args.runs} (run `ferkit train-batch configs/ablation` first)")
    args.out.write_text(json.dumps({"command": "ferkit train-batch configs/ablation", "runs": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
