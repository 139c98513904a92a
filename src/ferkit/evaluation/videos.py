"""Scoring a model on a folder of labelled videos (``<class>/<clip>``): frame- and clip-level metrics.

Every clip goes through the same pipeline as ``ferkit analyze`` on video (detection, alignment, classifier, face
tracking, temporal smoothing) at ``fps`` samples per second. Per sampled frame the largest face's *smoothed* label
(``smoothed_emotion`` of the records) is scored against the clip's folder; frames without a face are counted, not
scored. A clip's label is the majority of its frames' smoothed labels (ties: the tied class with the larger summed
smoothed probability); a clip without any face is a miss. Both levels are scored by
:func:`~ferkit.evaluation.scoring.metrics_block`, so the keys are those of image datasets: the block's top level holds
the frame level and ``clip_level`` the clip level.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ferkit.analysis.pipeline import AnalyzeOptions, Analyzer
from ferkit.analysis.records import FaceRecord
from ferkit.errors import InputError
from ferkit.evaluation.scoring import NO_FACE, Predictions, block_head, metrics_block, protocol
from ferkit.labels.folders import dataset_media, list_folder_videos
from ferkit.models.base import EmotionModel

#: Which record field gives a frame's label (the smoothed timeline label of ``ferkit analyze``).
FRAME_LABEL = "smoothed_emotion"
CLIP_LABEL = "majority of the frames' smoothed labels (ties: larger summed smoothed probability); no face: miss"
#: Keys of a clip-level block: metrics only (calibration bins mean nothing for a vote).
_CLIP_KEYS = ("n", "accuracy", "macro_f1", "misses", "per_class", "confusion_matrix", "balanced_accuracy")


@dataclass
class ClipResult:
    """One clip's frames: smoothed labels and probabilities of the scored frames, raw labels, frames without a face."""

    path: str
    label: str
    frames: list[str] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    no_face: int = 0

    def clip_label(self, classes: list[str]) -> str:
        """Majority of the smoothed frame labels; ties go to the larger summed smoothed probability."""
        if not self.frames:
            return NO_FACE
        counts = Counter(self.frames)
        total = np.sum(self.probs, axis=0)
        return max(counts, key=lambda c: (counts[c], total[classes.index(c)]))

    def row(self, classes: list[str]) -> dict:
        """The report's per-clip row."""
        counts = Counter(self.frames)
        n = len(self.frames)
        return {
            "clip": self.path,
            "true": self.label,
            "predicted": self.clip_label(classes),
            "frames_scored": n,
            "frames_without_face": self.no_face,
            "shares": {c: round(counts[c] / n, 4) if n else 0.0 for c in classes},
        }


def dataset_kinds(datasets: list[Path], split: str = "all") -> list[str]:
    """``images`` or ``videos`` per dataset, checked before any work: a folder mixing both is refused, and so is
    ``--split validation`` (a list of image files) with a video dataset."""
    kinds = [dataset_media(d) for d in datasets]
    if "videos" in kinds and split != "all":
        raise InputError(f"--split {split} lists image files; a video dataset is scored with --split all")
    return kinds


def _largest(records: list[FaceRecord]) -> FaceRecord | None:
    """The frame's face with the largest box (None for a frame without a face or with only gated faces)."""
    faces = [r for r in records if r.face_id is not None and r.smoothed_emotion is not None]
    return max(faces, key=lambda r: r.box[2] * r.box[3] if r.box else 0.0, default=None)


def predict_clips(
    model: EmotionModel,
    root: Path,
    options: AnalyzeOptions,
    tta: str | None = "auto",
    progress: Callable[[int], None] | None = None,
) -> tuple[list[ClipResult], dict[str, int], dict[str, str], list[str]]:
    """Analyse every clip whose class the model knows; returns the clips, skipped classes (clips per folder),
    the folder → class mapping and the decoder's warnings. An unreadable clip raises ``InputError``: a labelled
    clip silently left out would change the clip-level denominators."""
    items = list_folder_videos(root)
    skipped = Counter(i.folder for i in items if i.label not in model.classes)
    items = [i for i in items if i.label in model.classes]
    if not items:
        raise InputError(f"{root}: none of its class folders match the model's classes ({', '.join(model.classes)})")
    analyzer = Analyzer(model, options, tta=tta)
    classes, clips = model.classes, []
    for item in items:
        clip = ClipResult(str(item.path), item.label)
        for _, recs in itertools.groupby(analyzer.iter_source(item.path), key=lambda r: r.frame_index):
            face = _largest(list(recs))
            if face is None:
                clip.no_face += 1
            else:
                clip.frames.append(face.smoothed_emotion or NO_FACE)
                clip.probs.append(np.array([(face.smoothed_probabilities or {})[c] for c in classes]))
                clip.raw.append(face.emotion or NO_FACE)
            if progress:
                progress(1)
        clips.append(clip)
    return clips, dict(skipped), {i.folder: i.label for i in items}, analyzer.warnings


def _predictions(clips: list[ClipResult], classes: list[str], skipped: dict[str, int], frames: bool) -> Predictions:
    """Frame-level (one row per scored frame, smoothed probabilities as scores) or clip-level predictions."""
    if frames:
        paths = [c.path for c in clips for _ in c.frames]
        y_true = [c.label for c in clips for _ in c.frames]
        y_pred = [f for c in clips for f in c.frames]
        probs = [p for c in clips for p in c.probs]
        scores = np.log(np.clip(np.array(probs), 1e-6, 1.0)).reshape(len(probs), len(classes))
    else:
        paths, y_true = [c.path for c in clips], [c.label for c in clips]
        y_pred = [c.clip_label(classes) for c in clips]
        scores = np.full((len(clips), len(classes)), np.nan)  # no calibration metrics for a vote
    return Predictions(paths, y_true, y_pred, scores, scores, skipped, [], {})


def evaluate_videos(
    model: EmotionModel,
    root: Path,
    crops: bool = False,
    fps: float | None = 5.0,
    detector: str = "yunet",
    tta: str | None = "auto",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """One report block for a ``<class>/<clip>`` dataset: frame level at the top, ``clip_level``, ``per_clip``."""
    options = AnalyzeOptions(fps=fps, crops=crops, detector=detector)
    clips, skipped, mapping, warnings = predict_clips(model, root, options, tta, progress)
    classes = model.classes
    if not any(c.frames for c in clips):  # nothing to score: say how many frames were looked at, and why so few
        rate = f"at {fps:g} fps" if fps else "(every frame)"
        why = f"; {warnings[0]}" if warnings else ""
        sampled = sum(c.no_face for c in clips)
        raise InputError(
            f"{root}: no face found in any of its {len(clips)} clip(s): {sampled} frame(s) sampled {rate}{why}"
        )
    frame_pred = _predictions(clips, classes, skipped, frames=True)
    raw = metrics_block(replace(frame_pred, y_pred=[r for c in clips for r in c.raw]), classes)
    clip_block = metrics_block(_predictions(clips, classes, skipped, frames=False), classes)
    return {
        **block_head(model, root, crops),
        "unit": "frames",
        **metrics_block(frame_pred, classes),
        "frames_without_face": sum(c.no_face for c in clips),
        "frame_label": FRAME_LABEL,
        "raw_frames": {"accuracy": raw["accuracy"], "macro_f1": raw["macro_f1"]},  # unsmoothed labels, for comparison
        "clip_level": {"unit": "clips", **{k: clip_block[k] for k in _CLIP_KEYS}, "ece": None},
        "per_clip": [c.row(classes) for c in clips],
        "warnings": warnings,
        "protocol": protocol(model, root, crops, detector)
        | {
            "split": "all",
            "class_mapping": mapping,
            "unreadable_files": [],
            "media": "video",
            "fps": fps,
            "frame_label": FRAME_LABEL,
            "clip_label": CLIP_LABEL,
            "smoothing": {"tau": options.tau, "margin": options.margin, "k": options.k},
            "detect_interval": options.detect_interval,
        },
    }
