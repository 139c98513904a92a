"""What ``ferkit calibrate`` fits on: the raw logits of a labelled folder (cached on disk, written atomically) or
of every face in unlabelled images and videos, and the before/after metrics of a calibration."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.analysis.pipeline import AnalyzeOptions, Analyzer
from ferkit.errors import InputError
from ferkit.evaluation.scoring import predict_dataset, split_files
from ferkit.labels.folders import list_folder_dataset
from ferkit.media.files import atomic_write_bytes, collect_inputs
from ferkit.media.video import is_video, video_info
from ferkit.models.base import EmotionModel


def labelled_logits(
    model: EmotionModel, dataset: Path, crops: bool, split: str, detector: str, cache_dir: Path
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Raw logits and integer labels of a labelled folder (images without a face dropped), cached in ``cache_dir``;
    ``InputError`` when no face is left."""
    files = split_files(model, split)
    listing = [(str(i.path), i.path.stat().st_size, i.path.stat().st_mtime_ns) for i in list_folder_dataset(dataset)]
    key = hashlib.sha256(
        json.dumps([model.sha256, model.tta, str(dataset.resolve()), crops, split, detector, listing]).encode()
    ).hexdigest()[:16]
    cache = cache_dir / f"logits-{model.name}-{key}.npz"
    got = cached_logits(cache)
    if got is not None:
        z, y, n = got
    else:
        pred = predict_dataset(model, dataset, crops, detector=detector, files=files)
        found = ~np.isnan(pred.raw_logits).any(axis=1)
        z = pred.raw_logits[found]
        y = np.array([model.classes.index(t) for t, f in zip(pred.y_true, found, strict=True) if f])
        n = len(pred.y_true)
        buf = io.BytesIO()
        np.savez(buf, logits=z, labels=y, n=n)
        atomic_write_bytes(cache, buf.getvalue())  # a killed run never leaves half a cache
    if not len(y):
        raise InputError(f"{dataset}: no face found in any of its {n} image(s) to calibrate on")
    return z, y, {"dataset": str(dataset.resolve()), "split": split, "crops": crops, "images": n, "faces": len(y)}


def cached_logits(cache: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """A logits cache written by :func:`labelled_logits`, or None (absent or unreadable: computed again)."""
    try:
        with np.load(cache, allow_pickle=False) as got:
            return got["logits"], got["labels"], int(got["n"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def unlabelled_logits(
    model: EmotionModel, paths: list[Path], options: AnalyzeOptions
) -> tuple[np.ndarray, dict[str, Any]]:
    """Log-probabilities of every face the analyser finds in images/videos (uncalibrated model)."""
    for p in paths:  # a named video without a picture is refused before a detector starts (MediaPipe may log)
        if p.is_file() and is_video(p):
            video_info(p)
    analyzer = Analyzer(model, options)
    rows = [
        [r.probabilities[c] for c in model.classes]
        for r in analyzer.iter_records(collect_inputs(paths), strict=[p for p in paths if not p.is_dir()])
        if r.probabilities
    ]
    if not rows:
        raise InputError(f"{', '.join(map(str, paths))}: no faces found to calibrate on")
    z = np.log(np.clip(np.asarray(rows, np.float64), 1e-6, 1.0))
    warnings = analyzer.warnings + [f"skipped {path}: {why}" for path, why in analyzer.skipped]
    return z, {"inputs": [str(p) for p in paths], "faces": len(z), "fps": options.fps, "warnings": warnings}


def score_summary(z: np.ndarray, y: np.ndarray | None, target: np.ndarray | None, classes: list[str]) -> dict[str, Any]:
    """Decision and confidence metrics of scores ``z`` (labels and/or target ratios where given)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

    from ferkit.models.calibration import distribution_distance, expected_calibration_error, log_softmax

    pred = z.argmax(axis=1)
    hist = np.bincount(pred, minlength=len(classes)) / len(pred)
    out: dict[str, Any] = {
        "n": len(z),
        "predicted_distribution": dict(zip(classes, hist.round(4).tolist(), strict=True)),
    }
    if target is not None:
        out["distribution_distance"] = distribution_distance(pred, target)
    if y is not None:
        labels = list(range(len(classes)))
        rec = recall_score(y, pred, labels=labels, average=None, zero_division=0)
        out |= {
            "accuracy": float(accuracy_score(y, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0)),
            "recall": dict(zip(classes, rec.round(4).tolist(), strict=True)),
            "ece": expected_calibration_error(np.exp(log_softmax(z)), y)[0],
            "nll": float(-log_softmax(z)[np.arange(len(y)), y].mean()),
        }
    return out
