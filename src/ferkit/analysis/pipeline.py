"""The analysis pipeline: input files → frames → faces → aligned crops → batched predictions → smoothed records."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.analysis.au_tracks import HELD, AuSchedule, AuTracks, Held
from ferkit.analysis.hardcases import RuleSet
from ferkit.analysis.records import SENTIMENT, FaceRecord, source_name
from ferkit.analysis.smoothing import Smoother
from ferkit.errors import InputError
from ferkit.faces.align import align_face, resize_crop
from ferkit.faces.aus import AU_KEYS, AuFit, AuModel, LandmarkerPool, au_crop, still_crop
from ferkit.faces.detectors import Detector, Face, check_detector, create_detector, detector_template
from ferkit.faces.tracking import FaceTracker
from ferkit.media.images import Frame, image_frame
from ferkit.media.video import check_every, check_fps, is_video, iter_every, iter_video
from ferkit.models.base import EmotionModel, resolve_tta, set_tta
from ferkit.models.ensemble import CropKind, Ensemble, FaceScores


@dataclass
class AnalyzeOptions:
    """Knobs of :class:`Analyzer` (the CLI exposes the common ones)."""

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
class _Pending:
    index: int
    timestamp: float | None
    faces: list[tuple[int, Face, str]]  # (face_id, face, alignment kind)
    crops: dict[CropKind, list[np.ndarray]]  # one crop per face for each (size, channels) the models need
    au_crops: list[np.ndarray | None] | None = None  # --aus: one landmarker crop per face (RGB; None: not due)
    au_fits: list[AuFit | Held | None] | None = None  # --aus: filled by the model workers
    snapshot: dict | None = None  # tracker (and AU schedule) state: a checkpoint once this frame's records are out


@dataclass
class Analyzer:
    """Turns sources into :class:`FaceRecord` streams (see :meth:`iter_records`).

    ``models``: one model or a list (the first is the primary); ``fusion``/``reliability`` combine several, and a
    binary ``gate`` model with ``gate_class``/``gate_threshold`` withholds the emotion of faces it scores below the
    threshold (see :mod:`ferkit.models.ensemble`). ``tta``: a ``--tta`` choice applied to the models per source
    (``auto``
    resolves to flip for images and none for video, see :func:`ferkit.models.base.resolve_tta`); ``None`` leaves the
    models' own :attr:`~ferkit.models.base.EmotionModel.tta`.
    """

    models: EmotionModel | Sequence[EmotionModel]
    options: AnalyzeOptions = field(default_factory=AnalyzeOptions)
    fusion: str | None = None
    reliability: dict[str, dict[str, float]] | None = None
    gate: EmotionModel | None = None
    gate_class: str | None = None
    gate_threshold: float = 0.5
    tta: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of files that failed
    warnings: list[str] = field(default_factory=list)
    #: ``checkpoint(source, frame_index, state)``: called every ``options.checkpoint_seconds`` of video work, once
    #: the frame's records are all out, with the running state after it (see :mod:`ferkit.analysis.checkpoint`)
    checkpoint: Callable[[Path, int, dict], None] | None = None
    _detector: Detector | None = None

    def __post_init__(self) -> None:
        models = [self.models] if isinstance(self.models, EmotionModel) else list(self.models)
        self.ensemble = Ensemble(models, self.fusion, self.reliability, self.gate, self.gate_class, self.gate_threshold)
        self.models = self.ensemble.models
        if self.tta is not None:
            resolve_tta(self.tta)  # an unknown mode fails here, before any work
        self.au_model: AuModel | None = None
        self.landmarkers: LandmarkerPool | None = None
        self.rules: RuleSet | None = None
        if self.options.aus:  # everything --aus needs is loaded and checked before any work; nothing without it
            self.au_model = AuModel.load()
            self.rules = RuleSet.load(self.options.rules, AU_KEYS)
            self.landmarkers = LandmarkerPool(self.options.au_processes)
        elif self.options.rules is not None:
            raise InputError("--rules applies to --aus runs only")

    @property
    def au_keys(self) -> list[str] | None:
        """The AU keys of the records (None without ``--aus``)."""
        return list(AU_KEYS) if self.au_model is not None else None

    @property
    def model(self) -> EmotionModel:
        """The primary model."""
        return self.ensemble.primary

    @property
    def name(self) -> str:
        """The records' ``model`` value (``fused(a,b)`` with fusion)."""
        return self.ensemble.name

    @property
    def classes(self) -> list[str]:
        """Classes of the records' ``probabilities``."""
        return self.ensemble.classes

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = create_detector(self.options.detector)
        return self._detector

    def iter_records(
        self,
        sources: Iterable[Path],
        strict: Iterable[Path] = (),
        start_after: dict[str, int] | None = None,
        states: dict[str, dict] | None = None,
    ) -> Iterator[FaceRecord]:
        """Records of every source in order.

        A bad file raises ``InputError`` when it is in ``strict`` (named explicitly), else it is skipped and listed
        in ``skipped``. ``start_after`` maps a source to the last frame index already written (resume) and
        ``states`` a video to its checkpointed state after that frame. Runs of consecutive still images are scored
        in shared batches, like the frames of a video.
        """
        strict = {Path(p) for p in strict}
        start_after, states = start_after or {}, states or {}
        stills: list[Path] = []
        for src in [*map(Path, sources), None]:
            if src is not None and not is_video(src):
                stills.append(src)
                continue
            if stills:
                yield from self._iter_stills(stills, strict, start_after)
                stills = []
            if src is None:
                break
            try:
                yield from self.iter_source(src, start_after.get(str(src), -1), states.get(str(src)))
            except InputError as e:
                if src in strict:
                    raise
                self.skipped.append((str(src), str(e)))

    def iter_source(self, path: Path, start_after: int = -1, state: dict | None = None) -> Iterator[FaceRecord]:
        """Records of one image or video; frames with index ≤ ``start_after`` are skipped (resume), continuing from
        ``state`` (a checkpoint after frame ``start_after``) when given."""
        path = Path(path)
        video = is_video(path)
        if self.tta is not None:
            set_tta(self.models, self.tta, video)
        every = self.options.every
        frames: Iterable[Frame] = (
            [image_frame(path)] if not video else iter_video(path, self.options.fps, self.warnings)
        )
        if video and every is not None:
            frames = iter_every(path, every, problems=self.warnings)
        tracker = self._tracker()
        smoother = self._smoother()
        au_tracks = self._au_tracks(video)
        schedule = AuSchedule(self.options.au_fps) if au_tracks is not None else None
        if state is not None:
            smoother.restore(state["smoother"])
            if au_tracks is not None:
                au_tracks.restore(state["aus"])
        snapshots = video and tracker is not None and self.checkpoint is not None
        last = time.monotonic()

        def pending() -> Iterator[tuple[Path, _Pending]]:
            nonlocal last
            for f in frames:
                if f.index < start_after or (f.index == start_after and state is None):
                    continue
                if f.index == start_after:  # the checkpoint frame: its pixels are the tracker's previous frame
                    if tracker is not None:
                        tracker.restore(state["tracker"], f.gray)  # type: ignore[index]
                    if schedule is not None:
                        schedule.restore(state["au_schedule"])  # type: ignore[index]
                    continue
                p = self._faces(f, tracker, schedule)
                if snapshots and time.monotonic() - last >= self.options.checkpoint_seconds:
                    p.snapshot = {"tracker": tracker.state(), "au_schedule": schedule and schedule.state()}  # type: ignore[union-attr]
                    last = time.monotonic()
                yield path, p

        for _, p, scores in self._scored(pending()):
            yield from self._records(source_name(path), [p], scores, smoother, au_tracks)
            if p.snapshot is not None and self.checkpoint is not None:  # every record of p is written now
                ids = [
                    t["face_id"] for t in p.snapshot["tracker"]["tracks"] + p.snapshot["tracker"]["lost"]
                ]  # lost: re-findable
                aus = au_tracks.state(ids) if au_tracks is not None else None
                self.checkpoint(path, p.index, {**p.snapshot, "smoother": smoother.state(ids), "aus": aus})

    def state_fits(self, state: dict) -> bool:
        """Whether a checkpoint's state restores into this run's tracker, smoother and AU tracks; a damaged one is
        not used (the video is then analysed again from its start), so it can cost time, never records."""
        try:
            tracker, smoother, au_tracks = self._tracker(), self._smoother(), self._au_tracks(True)
            if tracker is not None:
                tracker.restore(state["tracker"], np.zeros((1, 1), np.uint8))
            smoother.restore(state["smoother"])
            if au_tracks is not None:
                au_tracks.restore(state["aus"])
                AuSchedule(None).restore(state["au_schedule"])
            return smoother.fits(len(self.classes))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):
            return False

    def _iter_stills(self, paths: list[Path], strict: set[Path], start_after: dict[str, int]) -> Iterator[FaceRecord]:
        """Records of still images, read and detected here while the workers score earlier ones in batches."""
        if self.tta is not None:
            set_tta(self.models, self.tta, video=False)
        failed: list[InputError] = []

        def pending() -> Iterator[tuple[Path, _Pending]]:
            for path in paths:
                if start_after.get(str(path), -1) >= 0:  # written by an interrupted run
                    continue
                try:
                    yield path, self._faces(image_frame(path), self._tracker())
                except InputError as e:
                    if path in strict:  # stop reading; what is already being scored is still written
                        failed.append(e)
                        return
                    self.skipped.append((str(path), str(e)))

        for path, p, scores in self._scored(pending()):
            yield from self._records(source_name(path), [p], scores, self._smoother(), self._au_tracks(False))
        if failed:
            raise failed[0]

    def _scored(self, items: Iterable[tuple[Path, _Pending]]) -> Iterator[tuple[Path, _Pending, list[FaceScores]]]:
        """Score pending frames in batches of ``batch_frames`` on ``model_workers`` threads while the caller's
        iterator decodes and detects the next ones (onnxruntime releases the GIL, so both cores stay busy); yields
        ``(source, pending, its faces' scores)`` in input order."""
        workers = self.options.model_workers

        def split(
            batch: list[tuple[Path, _Pending]], scores: list[FaceScores]
        ) -> Iterator[tuple[Path, _Pending, list[FaceScores]]]:
            i = 0
            for src, p in batch:
                yield src, p, scores[i : i + len(p.faces)]
                i += len(p.faces)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            running: deque[tuple[list[tuple[Path, _Pending]], Future[list[FaceScores]]]] = deque()
            batch: list[tuple[Path, _Pending]] = []
            for item in items:
                batch.append(item)
                if len(batch) >= self.options.batch_frames:
                    if len(running) >= workers:
                        done, fut = running.popleft()
                        yield from split(done, fut.result())
                    running.append((batch, pool.submit(self._probs, [p for _, p in batch])))
                    batch = []
            last = self._probs([p for _, p in batch])  # the last, partial batch runs here beside the workers
            while running:
                done, fut = running.popleft()
                yield from split(done, fut.result())
        yield from split(batch, last)

    def _tracker(self) -> FaceTracker | None:
        return None if self.options.crops else FaceTracker(self.detector, self.options.detect_interval)

    def _smoother(self) -> Smoother:
        return Smoother(self.options.tau, self.options.margin, self.options.k)

    def _au_tracks(self, video: bool) -> AuTracks | None:
        if self.au_model is None or self.rules is None:
            return None
        return AuTracks(self.au_model, self.rules, baseline=video and self.options.au_baseline)

    def _faces(self, frame: Frame, tracker: FaceTracker | None, schedule: AuSchedule | None = None) -> _Pending:
        kinds = self.ensemble.crop_kinds
        images: dict[str, np.ndarray] = {}

        def image(channels: str) -> np.ndarray:
            if channels not in images:
                images[channels] = frame.gray if channels == "gray" else frame.rgb()
            return images[channels]

        aus = self.au_model is not None
        if tracker is None:
            h, w = frame.gray.shape[:2]
            crops = {(size, ch): [resize_crop(image(ch), size, ch)] for size, ch in kinds}
            au_crops = [still_crop(frame.rgb())] if aus else None
            return _Pending(frame.index, frame.timestamp, [(0, Face((0, 0, w, h), 1.0), "crop")], crops, au_crops)
        faces: list[tuple[int, Face, str]] = []
        crops = {k: [] for k in kinds}
        au_crops: list[np.ndarray | None] | None = [] if aus else None
        tracks = tracker.update(frame)
        due = schedule.due([t.face_id for t in tracks], frame.timestamp) if schedule else [True] * len(tracks)
        for t, fit in zip(tracks, due, strict=True):
            for size, ch in kinds:
                crop, kind = align_face(image(ch), t.face, size, self.options.template)
                crops[(size, ch)].append(crop)
            faces.append((t.face_id, t.face, kind))
            if au_crops is not None:
                au_crops.append(au_crop(frame.rgb(), t.face.box) if fit else None)
        return _Pending(frame.index, frame.timestamp, faces, crops, au_crops)

    def _probs(self, batch: list[_Pending]) -> list[FaceScores]:
        if self.landmarkers is not None:  # the landmarker runs here, in the worker threads, beside the models
            due = [
                (c, float(f.box[2]))
                for p in batch
                for c, (_, f, _) in zip(p.au_crops or [], p.faces, strict=True)
                if c is not None
            ]
            fits = iter(self.landmarkers.fit_many([c for c, _ in due], [px for _, px in due]))
            for p in batch:
                p.au_fits = [HELD if c is None else next(fits) for c in p.au_crops or []]
        crops = {k: [c for p in batch for c in p.crops[k]] for k in self.ensemble.crop_kinds}
        if not crops[self.ensemble.crop_kinds[0]]:
            return []
        return self.ensemble.predict({k: np.stack(v) for k, v in crops.items()})

    def _records(
        self,
        source: str,
        batch: list[_Pending],
        scores: list[FaceScores],
        smoother: Smoother,
        au_tracks: AuTracks | None = None,
    ) -> Iterator[FaceRecord]:
        classes, name, fusion = self.classes, self.name, self.ensemble.fusion_info
        with_aus = au_tracks is not None
        i = 0
        for p in batch:
            if not p.faces:
                yield FaceRecord.no_face(source, p.index, p.timestamp, name, with_aus)
                continue
            for j, (face_id, face, kind) in enumerate(p.faces):
                s = scores[i]
                i += 1
                au_fields = au_tracks.update(face_id, p.timestamp, p.au_fits[j]) if au_tracks and p.au_fits else {}
                emotion = confidence = sentiment = s_label = s_probs = None
                if not s.gated:  # gated faces have no emotion and are not fed to the smoother
                    emotion, confidence = classes[s.label], round(float(s.probs[s.label]), 5)
                    sentiment = SENTIMENT.get(emotion, "neutral")
                    label, smoothed = smoother.update(face_id, p.timestamp, s.probs)
                    s_label, s_probs = (
                        classes[label],
                        {c: round(float(v), 5) for c, v in zip(classes, smoothed, strict=True)},
                    )
                yield FaceRecord(
                    source=source,
                    frame_index=p.index,
                    timestamp=p.timestamp,
                    face_id=face_id,
                    box=[round(float(v), 2) for v in face.box],
                    detection_score=round(face.score, 4),
                    alignment=kind,
                    model=name,
                    emotion=emotion,
                    confidence=confidence,
                    sentiment=sentiment,
                    probabilities={c: round(float(v), 5) for c, v in zip(classes, s.probs, strict=True)},
                    smoothed_emotion=s_label,
                    smoothed_probabilities=s_probs,
                    models=s.models,
                    fusion=fusion,
                    gate=s.gate,
                    gated=s.gated,
                    with_aus=with_aus,
                    **au_fields,
                )
