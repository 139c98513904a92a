"""Model fusion on FER2013 test, its per-frame overhead, and two-model video speed.

    python benchmarks/fusion.py [--models ferkit fer] [--video ../shared/data/videos/woman_talking.mp4]

1. Each single model and each fusion strategy (majority, soft, reliability) on fer2013/test (``--crops`` path):
   accuracy and macro-F1 in one table. Reliability weights are per-class F1 from ``ferkit evaluate`` on the
   bundled model's validation files (carved from fer2013/train; never test).
2. Fusion overhead: microseconds per face row of ``fuse_models`` for each strategy.
3. End-to-end every-frame analysis of the shared video with the first model alone and with all models fused
   (soft vote): frames/s, in one process, back to back.
Results: printed + benchmarks/results/fusion.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score

from ferkit.evaluation.scoring import metrics_block, predict_dataset, split_files
from ferkit.models.base import softmax
from ferkit.models.fusion import FUSION_STRATEGIES, ModelOutput, fuse_models, reliability_from_report
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def video_fps(models: list[str], video: Path, fusion: str | None) -> float:
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.analysis.setup import ModelSetup, make_analyzer

    analyzer = make_analyzer(ModelSetup(models, fusion=fusion, tta="none"), AnalyzeOptions(fps=None))
    list(analyzer.iter_records([video]))  # warm-up
    t0 = time.perf_counter()
    n = len({r.frame_index for r in analyzer.iter_records([video])})
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["ferkit", "fer"])
    ap.add_argument("--video", default=str(DATA / "videos" / "woman_talking.mp4"))
    args = ap.parse_args()
    test, train = DATA / "fer2013" / "test", DATA / "fer2013" / "train"
    val_files = split_files(load_model("ferkit"), "validation")
    outputs, val_blocks, rows = [], [], []
    for name in args.models:
        model = load_model(name)  # as shipped (with its calibration, if any)
        pred = predict_dataset(model, test, crops=True)
        outputs.append(ModelOutput(model.name, model.classes, softmax(pred.logits)))
        y_true = pred.y_true
        rows.append(
            {
                "model": name,
                "accuracy": accuracy_score(y_true, pred.y_pred),
                "macro_f1": f1_score(y_true, pred.y_pred, average="macro"),
            }
        )
        val = predict_dataset(model, train, crops=True, files=val_files)
        val_blocks.append({"model": model.name, **metrics_block(val, model.classes)})
    reliability = reliability_from_report({"results": val_blocks}, "f1")
    timing = {}
    for strategy in FUSION_STRATEGIES:
        t0 = time.perf_counter()
        fused = fuse_models(outputs, strategy, reliability if strategy == "reliability" else None)
        timing[strategy] = (time.perf_counter() - t0) / len(y_true) * 1e6
        rows.append(
            {
                "model": f"{strategy}({', '.join(args.models)})",
                "accuracy": accuracy_score(y_true, fused.labels),
                "macro_f1": f1_score(y_true, fused.labels, average="macro"),
            }
        )
    for r in rows:
        print(f"{r['model']:32s} accuracy {r['accuracy']:.4f}  macro-F1 {r['macro_f1']:.4f}")
    print("fusion overhead (µs per face):", {k: round(v, 2) for k, v in timing.items()})
    speed = {
        args.models[0]: video_fps(args.models[:1], Path(args.video), None),
        f"soft({', '.join(args.models)})": video_fps(args.models, Path(args.video), "soft"),
    }
    print("every-frame video frames/s:", {k: round(v, 1) for k, v in speed.items()})
    out = HERE / "results" / "fusion.json"
    out.write_text(
        json.dumps(
            {
                "command": f"python benchmarks/fusion.py --models {' '.join(args.models)}",
                "fer2013_test": rows,
                "reliability_metric": "per-class F1 on the bundled model's validation files",
                "fusion_overhead_us_per_face": timing,
                "video_frames_per_s": speed,
                "n_test": len(y_true),
            },
            indent=1,
        )
    )
    print(out)


if __name__ == "__main__":
    main()
