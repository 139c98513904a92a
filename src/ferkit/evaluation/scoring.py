"""Scoring a model on a folder dataset (``<class>/<image>``): accuracy, F1, per-class metrics, confusion, ECE.

The report is ``{"ferkit_version", "results": [block, ...]}`` with one block per model × dataset, each holding the
keys ``n, accuracy, macro_f1, misses, per_class, confusion_matrix`` plus ``balanced_accuracy, weighted_f1, ece,
reliability`` and a ``protocol`` (dataset, split, class mapping, model hash, calibration), so more models and
datasets add blocks without changing keys.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from ferkit._version import __version__
from ferkit.errors import InputError
from ferkit.faces.align import align_face, resize_crop, to_channels
from ferkit.faces.detectors import create_detector, detector_template
from ferkit.labels.folders import list_folder_dataset
from ferkit.media.images import read_image
from ferkit.models.base import EmotionModel, softmax
from ferkit.models.calibration import expected_calibration_error

NO_FACE = "__no_face__"


@dataclass
class Predictions:
    """Per-image outcome of a dataset pass: true labels, predicted labels (``NO_FACE`` for misses), logits."""

    paths: list[str]
    y_true: list[str]
    y_pred: list[str]
    logits: np.ndarray  # (N, C) calibrated scores (raw without a calibration); rows of misses are NaN
    raw_logits: np.ndarray  # (N, C) uncalibrated, for fitting a calibration on cached scores
    skipped_classes: dict[str, int]
    unreadable: list[str]
    class_mapping: dict[str, str]  # folder name -> model class, for the folders that were scored


def predict_dataset(
    model: EmotionModel,
    root: Path,
    crops: bool,
    detector: str = "yunet",
    template: str | None = None,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    files: Collection[str] | None = None,
) -> Predictions:
    """Run ``model`` over every image of a folder dataset whose class the model knows.

    ``template``: the alignment template for photos (None: the detector's own, :func:`detector_template`).
    ``files`` restricts the pass to these ``<folder>/<file name>`` entries (e.g. a model card's validation list).
    Unreadable or refused images are left out and listed; ``InputError`` when no image is left to score.
    """
    items = list_folder_dataset(root)
    if files is not None:
        wanted = set(files)
        items = [i for i in items if f"{i.folder}/{i.path.name}" in wanted]
        if not items:
            raise InputError(f"{root}: none of the {len(wanted)} listed split files are in this folder")
    known = set(model.classes)
    skipped = Counter(i.folder for i in items if i.label not in known)
    items = [i for i in items if i.label in known]
    if not items:
        raise InputError(f"{root}: none of its class folders match the model's classes ({', '.join(model.classes)})")
    det = None if crops else create_detector(detector)
    template = template or detector_template(detector)
    size, ch = model.input_size, model.channels
    paths, y_true, rows, unreadable = [], [], [], []
    logits = np.full((len(items), len(model.classes)), np.nan, np.float32)
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            logits[rows[-len(batch) :]] = model.raw_logits(np.stack(batch), batch_size)
            batch.clear()

    first_error = ""
    for item in items:
        try:
            rgb = read_image(item.path)
        except InputError as e:
            unreadable.append(str(item.path))
            first_error = first_error or str(e)
            continue
        k = len(paths)
        paths.append(str(item.path))
        y_true.append(item.label)
        img = resize_crop(rgb, size, ch) if crops else None
        if det is not None:
            faces = det.detect_still(rgb)
            if faces:
                img, _ = align_face(to_channels(rgb, ch), faces[0], size, template)
        if img is not None:
            rows.append(k)
            batch.append(img)
            if len(batch) >= batch_size:
                flush()
        if progress:
            progress(1)
    if not paths:
        raise InputError(f"{root}: none of its {len(items)} image(s) could be read (first: {first_error})")
    flush()
    raw = logits[: len(paths)]
    logits = model.calibration.apply(raw) if model.calibration is not None else raw
    y_pred = [model.classes[int(r.argmax())] if not np.isnan(r).any() else NO_FACE for r in logits]
    mapping = {i.folder: i.label for i in items}
    return Predictions(paths, y_true, y_pred, logits, raw, dict(skipped), unreadable, mapping)


def metrics_block(pred: Predictions, classes: list[str]) -> dict:
    """The report keys for one model × dataset: misses count as errors for accuracy and recall."""
    present = [c for c in classes if c in set(pred.y_true)]
    with warnings.catch_warnings():  # a dataset lacking some classes is normal here, and reported per class
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")  # e.g. one labelled clip
        balanced = float(balanced_accuracy_score(pred.y_true, pred.y_pred))
    p, r, f, s = precision_recall_fscore_support(pred.y_true, pred.y_pred, labels=present, zero_division=0)
    cm = confusion_matrix(pred.y_true, pred.y_pred, labels=classes)
    return {
        "n": len(pred.y_true),
        "accuracy": float(accuracy_score(pred.y_true, pred.y_pred)),
        "macro_f1": float(f1_score(pred.y_true, pred.y_pred, labels=present, average="macro", zero_division=0)),
        "misses": sum(y == NO_FACE for y in pred.y_pred),
        "per_class": {
            c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, c in enumerate(present)
        },
        "confusion_matrix": {"labels": classes, "matrix": cm.tolist()},
        "skipped_classes": pred.skipped_classes,
        "unreadable": len(pred.unreadable),
        "balanced_accuracy": balanced,
        "weighted_f1": float(f1_score(pred.y_true, pred.y_pred, labels=present, average="weighted", zero_division=0)),
        **_calibration_metrics(pred, classes),
    }


def _calibration_metrics(pred: Predictions, classes: list[str]) -> dict:
    """ECE (15 equal-width bins) and the reliability table over the images where a face was scored."""
    found = ~np.isnan(pred.logits).any(axis=1)
    if not found.any():
        return {"ece": None, "reliability": []}
    y = np.array([classes.index(t) for t in np.asarray(pred.y_true)[found]])
    ece, table = expected_calibration_error(softmax(pred.logits[found]), y)
    return {"ece": ece, "reliability": table}


def evaluate(
    model: EmotionModel,
    root: Path,
    crops: bool,
    progress: Callable[[int], None] | None = None,
    split: str = "all",
    split_of: EmotionModel | None = None,
    **kwargs: object,
) -> dict:
    """One report block: metrics plus the protocol (which model, hash, calibration, dataset, split, mapping).

    ``split="validation"`` scores only the files the model card lists as its validation images, or those of
    ``split_of``'s card (so a model without a card, such as ``fer``, is scored on the same images).
    """
    files = split_files(split_of or model, split)
    pred = predict_dataset(model, root, crops, progress=progress, files=files, **kwargs)  # type: ignore[arg-type]
    split_text = split if split == "all" else f"{split} files of {(split_of or model).name}"
    return {
        **block_head(model, root, crops),
        **metrics_block(pred, model.classes),
        "protocol": protocol(model, root, crops, kwargs.get("detector", "yunet"))  # type: ignore[arg-type]
        | {"split": split_text, "class_mapping": pred.class_mapping, "unreadable_files": pred.unreadable},
    }


def block_head(model: EmotionModel, root: Path, crops: bool) -> dict:
    """The first keys of a report block: which model on which dataset."""
    return {"model": model.name, "model_sha256": model.sha256, "dataset": str(root), "crops": crops}


def protocol(model: EmotionModel, root: Path, crops: bool, detector: str) -> dict:
    """A block's ``protocol`` keys shared by image and video datasets (the caller adds split, mapping, files)."""
    cal = model.calibration
    return {
        "dataset": str(Path(root).resolve()),
        "model": model.name,
        "model_sha256": model.sha256,
        "calibration": None
        if cal is None
        else {"bias": cal.bias, "temperature": cal.temperature, "method": cal.method, "objective": cal.objective},
        "tta": model.tta,
        "crops": crops,
        "detector": None if crops else detector,
    }


def split_files(model: EmotionModel, split: str) -> list[str] | None:
    """``all`` → None (every file); ``validation`` → the card's validation list (``<folder>/<file>`` names)."""
    if split == "all":
        return None
    if split != "validation":
        raise InputError(f"--split must be 'all' or 'validation', got {split!r}")
    card = getattr(model, "card", None)
    files = (card.extra.get("training", {}) if card is not None else {}).get("validation_files")
    if not files:
        raise InputError(f"model {model.name!r} lists no validation files in its card; use --split all")
    return files


def report(blocks: list[dict]) -> dict:
    """Wrap result blocks into the report document."""
    return {"ferkit_version": __version__, "results": blocks}
