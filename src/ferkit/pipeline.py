"""The analysis pipeline: input files → frames → faces → aligned crops → batched predictions → smoothed records."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.align import align_face, resize_crop
from ferkit.datasets import IMAGE_SUFFIXES
from ferkit.errors import InputError
from ferkit.faces import Detector, Face, create_detector
from ferkit.models import EmotionModel
from ferkit.records import SENTIMENT, FaceRecord
from ferkit.timeline import Smoother
from ferkit.tracking import FaceTracker
from ferkit.video import VIDEO_SUFFIXES, Frame, image_frame, is_video, iter_video


@dataclass
class AnalyzeOptions:
    """Knobs of :class:`Analyzer` (the CLI exposes the common ones)."""

    fps: float | None = 5.0  # video sampling rate; None = every frame
    crops: bool = False  # each image already is a face crop: no detection, just resize
    detector: str = "blazeface"
    detect_interval: float = 0.3  # seconds of video between full detections (optical flow in between)
    template: str = "fer"
    batch_frames: int = 32  # small batches: the model worker starts sooner and the unoverlapped last batch is short
    tau: float = 0.5
    margin: float = 0.1
    k: int = 3


def collect_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into image and video files; ``InputError`` for a missing path."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


@dataclass
class _Pending:
    index: int
    timestamp: float | None
    faces: list[tuple[int, Face, str]]  # (face_id, face, alignment kind)
    crops: list[np.ndarray]


@dataclass
class Analyzer:
    """Turns sources into :class:`FaceRecord` streams with one model (see :meth:`iter_records`)."""

    model: EmotionModel
    options: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files that failed
    warnings: list[str] = field(default_factory=list)
    _detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = create_detector(self.options.detector)
        return self._detector

    def iter_records(
        self, sources: Iterable[Path], strict: Iterable[Path] = (), start_after: dict[str, int] | None = None
    ) -> Iterator[FaceRecord]:
        """Records of every source in order.

        A bad file raises ``InputError`` when it is in ``strict`` (named explicitly), else it is skipped and listed
        in ``skipped``. ``start_after`` maps a source to the last frame index already written (resume).
        """
        strict = {Path(p) for p in strict}
        for src in sources:
            try:
                yield from self.iter_source(src, (start_after or {}).get(str(src), -1))
            except InputError as e:
                if Path(src) in strict:
                    raise
                self.skipped.append((str(src), str(e)))

    def iter_source(self, path: Path, start_after: int = -1) -> Iterator[FaceRecord]:
        """Records of one image or video; frames with index ≤ ``start_after`` are skipped (resume)."""
        path = Path(path)
        if is_video(path):
            frames: Iterable[Frame] = iter_video(path, self.options.fps, self.warnings)
        else:
            frames = [image_frame(path)]
        tracker = None if self.options.crops else FaceTracker(self.detector, self.options.detect_interval)
        smoother = Smoother(self.options.tau, self.options.margin, self.options.k)
        batch: list[_Pending] = []
        # The model runs on one batch in a worker thread while this thread decodes and tracks the next one
        # (onnxruntime releases the GIL), so the two cores are both busy on video.
        with ThreadPoolExecutor(max_workers=1) as pool:
            running: tuple[list[_Pending], Future[np.ndarray]] | None = None
            for frame in frames:
                if frame.index <= start_after:  # already written by an interrupted run
                    continue
                batch.append(self._faces(frame, tracker))
                if len(batch) >= self.options.batch_frames:
                    if running is not None:
                        yield from self._records(str(path), running[0], running[1].result(), smoother)
                    running, batch = (batch, pool.submit(self._probs, batch)), []
            last = self._probs(batch)  # the last, partial batch runs here while the worker finishes the one before
            if running is not None:
                yield from self._records(str(path), running[0], running[1].result(), smoother)
        yield from self._records(str(path), batch, last, smoother)

    def _image(self, frame: Frame) -> np.ndarray:
        return frame.gray if self.model.channels == "gray" else frame.rgb()

    def _faces(self, frame: Frame, tracker: FaceTracker | None) -> _Pending:
        size = self.model.input_size
        img = self._image(frame)
        if tracker is None:
            h, w = img.shape[:2]
            crop = resize_crop(img, size, self.model.channels)
            return _Pending(frame.index, frame.timestamp, [(0, Face((0, 0, w, h), 1.0), "crop")], [crop])
        faces, crops = [], []
        for t in tracker.update(frame):
            crop, kind = align_face(img, t.face, size, self.options.template)
            crops.append(crop)
            faces.append((t.face_id, t.face, kind))
        return _Pending(frame.index, frame.timestamp, faces, crops)

    def _probs(self, batch: list[_Pending]) -> np.ndarray:
        crops = [c for p in batch for c in p.crops]
        return self.model.predict_proba(np.stack(crops)) if crops else np.zeros((0, len(self.model.classes)))

    def _records(
        self, source: str, batch: list[_Pending], probs: np.ndarray, smoother: Smoother
    ) -> Iterator[FaceRecord]:
        classes = self.model.classes
        i = 0
        for p in batch:
            if not p.faces:
                yield FaceRecord.no_face(source, p.index, p.timestamp, self.model.name)
                continue
            for face_id, face, kind in p.faces:
                pr = probs[i]
                i += 1
                top = int(pr.argmax())
                s_label, s_probs = smoother.update(face_id, p.timestamp, pr)
                yield FaceRecord(
                    source=source,
                    frame_index=p.index,
                    timestamp=p.timestamp,
                    face_id=face_id,
                    box=[round(float(v), 2) for v in face.box],
                    detection_score=round(face.score, 4),
                    alignment=kind,
                    model=self.model.name,
                    emotion=classes[top],
                    confidence=round(float(pr[top]), 5),
                    sentiment=SENTIMENT.get(classes[top], "neutral"),
                    probabilities={c: round(float(v), 5) for c, v in zip(classes, pr, strict=True)},
                    smoothed_emotion=classes[s_label],
                    smoothed_probabilities={c: round(float(v), 5) for c, v in zip(classes, s_probs, strict=True)},
                )
