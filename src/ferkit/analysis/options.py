"""What an analysis is asked to do (:class:`AnalyzeOptions`) and the unit of work its stages pass on (:class:`Pending`:
one frame's faces and crops, scored later in batches). :mod:`ferkit.analysis.pipeline` re-exports both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.analysis.au_tracks import Held
from ferkit.errors import InputError
from ferkit.faces.aus import AuFit
from ferkit.faces.detectors import Face, check_detector, detector_template
from ferkit.media.video import check_every, check_fps
from ferkit.models.ensemble import CropKind


@dataclass
class AnalyzeOptions:
    """Knobs of :class:`~ferkit.analysis.pipeline.Analyzer` (the CLI exposes the common ones)."""

    fps: float | None = 5.0  # video sampling rate; None = every frame
    every: int | None = None  # video: every N-th frame instead of ``fps`` (decodes sparsely, see media.video)
    crops: bool = False  # each image already is a face crop: no detection, just resize
    detector: str = "yunet"
    detect_interval: float = 0.3  # seconds of video between full detections (optical flow in between)
    template: str | None = None  # alignment template; None: the detector's own (faces.detectors.detector_template)
    batch_frames: int = 16  # small batches: the model workers start sooner and the unoverlapped last batch is short
    model_workers: int = 2  # batches scored at once in worker threads (one-thread onnxruntime each): one per core
    tau: float = 0.5
    margin: float = 0.1
    k: int = 3
    aus: bool = False  # action units, visual speech and hard-case rules per face (loads the face landmarker)
    rules: str | Path | None = None  # hard-case rules file (None: the shipped one); only with aus
    au_baseline: bool = True  # video: correct AU features by each track's own neutral baseline (stills: never)
    au_processes: int = 2  # landmarker worker processes (MediaPipe holds the GIL; 0: fit in the model threads)
    au_fps: float | None = 15.0  # video: landmarker fits per face per second at most (None: all); see AuSchedule
    checkpoint_seconds: float = 2.0  # seconds of video work between resume checkpoints (output.state.json)

    def __post_init__(self) -> None:
        """Values outside their domain are one ``InputError`` here, for the Python API as for the CLI."""
        check_fps(self.fps)
        check_fps(self.au_fps, option="--au-fps")
        check_every(self.every)
        check_detector(self.detector)
        self.template = self.template or detector_template(self.detector)
        for name, value, lo, hi in (
            ("--detect-interval", self.detect_interval, 0, 3600),
            ("--checkpoint-every", self.checkpoint_seconds, 0, 3600),
            ("tau", self.tau, 0, 3600),
            ("margin", self.margin, 0, 1),
            ("k", self.k, 1, 10_000),
            ("batch_frames", self.batch_frames, 1, 4096),
            ("model_workers", self.model_workers, 1, 64),
            ("au_processes", self.au_processes, 0, 64),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise InputError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


@dataclass
class Pending:
    """One frame's faces and their model crops, waiting to be scored (in batches) and turned into records."""

    index: int
    timestamp: float | None
    faces: list[tuple[int, Face, str]]  # (face_id, face, alignment kind)
    crops: dict[CropKind, list[np.ndarray]]  # one crop per face for each (size, channels) the models need
    au_crops: list[np.ndarray | None] | None = None  # --aus: one landmarker crop per face (RGB; None: not due)
    au_fits: list[AuFit | Held | None] | None = None  # --aus: filled by the model workers
    snapshot: dict | None = None  # tracker (and AU schedule) state: a checkpoint once this frame's records are out
