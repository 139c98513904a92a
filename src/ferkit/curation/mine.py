"""``ferkit mine``: run the analysis over videos and folders and keep the faces worth a human look in a queue.

Each source is analysed by the ordinary pipeline (:func:`ferkit.analysis.setup.make_analyzer`); a second decoder
walks the same sampled frames beside the records, for the pixels of the faces kept. Sources finished with the same
settings are skipped on a rerun; an interrupted source is mined again from its start, and faces already stored are
not added twice (ids are digests of source, frame and track, and the run is deterministic).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.analysis.records import FaceRecord, source_name
from ferkit.analysis.setup import ModelSetup, make_analyzer
from ferkit.curation.filters import (
    Flicker,
    MineRules,
    NearDuplicates,
    StaticTracks,
    norm_entropy,
    priority,
    quality_problem,
    reasons_of,
    sharpness,
    yaw_of,
)
from ferkit.curation.queue import Queue, QueuedFace
from ferkit.errors import InputError
from ferkit.faces.align import align_face
from ferkit.faces.detectors import Detector, Face, create_detector, iou
from ferkit.media.files import OutputLock, atomic_write_bytes, collect_inputs, source_identity
from ferkit.media.images import Frame, image_frame
from ferkit.media.video import is_video, iter_video, video_info
from ferkit.models.loading import DEFAULT_MODEL

CROP_SIZE = 112
THUMB_SIDE = 320


@dataclass
class MineOptions:
    """What ``ferkit mine`` runs and keeps."""

    fps: float | None = 5.0
    models: Sequence[str] = (DEFAULT_MODEL,)
    aus: bool = False
    detector: str = "yunet"
    cap: int | None = 200  # faces kept per source at most (lowest priority evicted first); None: no cap
    rules: MineRules = field(default_factory=MineRules)
    checkpoint_seconds: float = 2.0  # seconds of video work between resume checkpoints (not a setting of the result)

    def settings(self) -> str:
        """The settings a finished source was mined with (another value mines it again)."""
        d = {**asdict(self), "models": list(self.models)}
        d.pop("checkpoint_seconds")
        return json.dumps(d, sort_keys=True)


@dataclass
class MineSummary:
    """Counts of one ``mine`` run."""

    sources: int = 0
    already_done: int = 0
    resumed: int = 0  # sources continued from a checkpoint an interrupted run left
    faces_seen: int = 0
    candidates: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    kept_reasons: Counter = field(default_factory=Counter)
    video_seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped"], d["kept_reasons"] = dict(self.dropped), dict(self.kept_reasons)
        return d


def source_key(path: Path) -> str:
    """A source's identity: its file (device, inode), size and modification time — any spelling, changed → new."""
    ident = source_identity(path)
    text = f"{ident['dev']}:{ident['ino']}:{ident['size']}:{ident['mtime_ns']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def face_id(key: str, frame_index: int, track: int | None) -> str:
    """A kept face's id: 16 hex digits of its source, frame and track (the same face gets the same id on a rerun)."""
    return hashlib.sha256(f"{key}:{frame_index}:{track}".encode()).hexdigest()[:16]


class _Frames:
    """The sampled frames of one source, walked forward to the frame of each record."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self.it: Iterator[Frame] = iter_video(path, fps) if is_video(path) else iter([image_frame(path)])
        self.cur: Frame | None = None

    def at(self, index: int) -> Frame | None:
        while self.cur is None or self.cur.index < index:
            self.cur = next(self.it, None)
            if self.cur is None:
                return None
        return self.cur if self.cur.index == index else None


def _refit(detector: Detector, rgb: np.ndarray, box: list[float]) -> Face:
    """The face at ``box`` with the detector's keypoints (detected again around it), or the box alone."""
    x, y, w, h = box
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(x - w / 2)), max(0, int(y - h / 2))
    x1, y1 = min(width, int(x + 1.5 * w)), min(height, int(y + 1.5 * h))
    best, best_iou = None, 0.3
    if x1 - x0 > 8 and y1 - y0 > 8:
        for f in detector.detect(np.ascontiguousarray(rgb[y0:y1, x0:x1])):
            found = (f.box[0] + x0, f.box[1] + y0, f.box[2], f.box[3])
            overlap = iou((x, y, w, h), found)
            if overlap > best_iou:
                kp = {k: (px + x0, py + y0) for k, (px, py) in f.keypoints.items()}
                best, best_iou = Face(found, f.score, kp), overlap
    return best or Face((x, y, w, h), 1.0)


def context_jpeg(rgb: np.ndarray, box: list[float]) -> bytes:
    """The frame scaled to :data:`THUMB_SIDE` with the face's box drawn, as JPEG."""
    scale = min(1.0, THUMB_SIDE / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb.copy()
    x, y, w, h = (round(v * scale) for v in box)
    cv2.rectangle(small, (x, y), (x + w, y + h), (255, 64, 64), 2)
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def png_bytes(rgb: np.ndarray) -> bytes:
    _, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return buf.tobytes()


@dataclass
class _Item:
    """A candidate on its way to the queue (held while its track may still turn out static)."""

    face: QueuedFace
    crop: bytes
    context: bytes
    reasons: list[str]

    def encode(self) -> dict[str, Any]:
        b64 = base64.b64encode
        return {"face": asdict(self.face), "crop": b64(self.crop).decode(), "context": b64(self.context).decode()}

    @staticmethod
    def decode(d: dict[str, Any]) -> _Item:
        face = QueuedFace(**d["face"])
        return _Item(face, base64.b64decode(d["crop"]), base64.b64decode(d["context"]), face.reasons)


class Miner:
    """Mines sources into a :class:`Queue` (see :func:`mine`)."""

    def __init__(self, queue: Queue, options: MineOptions, setup: ModelSetup | None = None) -> None:
        self.queue, self.options, self.rules = queue, options, options.rules
        aopts = AnalyzeOptions(
            fps=options.fps, aus=options.aus, detector=options.detector, checkpoint_seconds=options.checkpoint_seconds
        )
        self.analyzer = make_analyzer(setup or ModelSetup(list(options.models)), aopts)
        self.detector = create_detector(options.detector)
        self.summary = MineSummary()

    def mine(self, paths: Sequence[Path], progress: Callable[[str, float], None] | None = None) -> MineSummary:
        strict = {Path(p) for p in paths if not Path(p).is_dir()}
        settings = self.options.settings()
        for src in collect_inputs(paths):
            key = source_key(src)
            if self.queue.source_done(key, settings):
                self.summary.already_done += 1
                continue
            try:
                self._source(src, key, settings, progress)
            except InputError as e:
                if src in strict:
                    raise
                self.summary.skipped.append((str(src), str(e)))
        self.summary.warnings = list(self.analyzer.warnings)
        return self.summary

    def _source(self, src: Path, key: str, settings: str, progress: Callable[[str, float], None] | None) -> None:
        frames = _Frames(src, self.options.fps)
        video = is_video(src)
        cp = self.queue.checkpoint(key, settings) if video else None
        self.queue.start_source(key, source_name(src), settings)
        dropped: Counter = Counter()
        counts: Counter = Counter()  # seen, candidates

        def drop(item: _Item) -> None:
            dropped["static"] += 1

        static = StaticTracks(self.rules, lambda item: self._store(item, dropped), drop)
        flicker, dupes = Flicker(self.rules), NearDuplicates(self.rules)
        start, astate = -1, None
        if cp is not None and self.analyzer.state_fits(cp.get("analysis") or {}):
            try:  # continue after the last checkpoint: the analysis, the filters and the counts as they were then
                static.restore(cp["static"], _Item.decode)
                flicker.restore(cp["flicker"])
                dupes.restore(cp["dupes"])
                dropped.update(cp["dropped"])
                counts.update(cp["counts"])
                start, astate = int(cp["frame"]), cp["analysis"]
                self.summary.resumed += 1
            except (KeyError, TypeError, ValueError, IndexError):  # a damaged checkpoint: mine the source again
                static.restore([], _Item.decode)
                flicker, dupes, dropped, counts = Flicker(self.rules), NearDuplicates(self.rules), Counter(), Counter()

        def checkpoint(path: Path, frame_index: int, state: dict) -> None:
            # called once every record up to frame_index has gone through the loop below
            doc = {"frame": frame_index, "analysis": state, "static": static.state(_Item.encode)}
            doc |= {"flicker": flicker.state(), "dupes": dupes.state(), "dropped": dropped, "counts": counts}
            self.queue.save_checkpoint(key, doc)

        self.analyzer.checkpoint = checkpoint if video else None
        for rec in self.analyzer.iter_source(src, start, astate):
            if rec.face_id is None or rec.box is None:
                continue
            counts["seen"] += 1
            frame = frames.at(rec.frame_index)
            if frame is None:  # cannot happen with the same sampling; counted, never stored without pixels
                dropped["no_pixels"] += 1
                continue
            t = rec.timestamp
            if t is not None:
                static.update(rec.face_id, t, rec.box, frame.gray)
                static.evict(t)
            flickers = flicker.update(rec.face_id, t, rec.emotion)
            item = self._candidate(rec, key, frame, flickers, dupes, dropped, counts)
            if progress:
                progress(source_name(src), t or 0.0)
            if item is None:
                continue
            if t is None:
                self._store(item, dropped)
            else:
                static.offer(rec.face_id, t, item)
        static.finish()
        seconds = video_info(src).duration if video else None
        self.summary.video_seconds += seconds or 0.0
        self.summary.sources += 1
        self.summary.faces_seen += counts["seen"]
        self.summary.candidates += counts["candidates"]
        self.summary.dropped.update(dropped)
        self.queue.finish_source(key, counts["seen"], counts["candidates"], seconds, dict(dropped))

    def _candidate(
        self,
        rec: FaceRecord,
        key: str,
        frame: Frame,
        flickers: bool,
        dupes: NearDuplicates,
        dropped: Counter,
        counts: Counter,
    ) -> _Item | None:
        reasons = reasons_of(rec.to_dict(), self.rules, flickers)
        if not reasons:
            return None
        counts["candidates"] += 1
        track = rec.face_id if rec.face_id is not None else 0
        if rec.box[2] < self.rules.min_face:  # type: ignore[index]
            dropped["too_small"] += 1
            return None
        rgb = frame.rgb()
        face = _refit(self.detector, rgb, rec.box)  # type: ignore[arg-type]
        crop, _ = align_face(rgb, face, CROP_SIZE, self.detector.template)
        sharp, yaw = sharpness(crop), yaw_of(face)
        problem = quality_problem(rec.box[2], sharp, yaw, self.rules)  # type: ignore[index]
        if problem:
            dropped[problem] += 1
            return None
        h = dupes.hash(crop)
        if dupes.is_duplicate(track, h):
            dropped["near_duplicate"] += 1
            return None
        dupes.add(track, h)
        entropy = norm_entropy(rec.probabilities)
        qf = QueuedFace(
            id=face_id(key, rec.frame_index, rec.face_id),
            source_key=key,
            source=rec.source,
            frame_index=rec.frame_index,
            timestamp=rec.timestamp,
            track=rec.face_id,
            box=list(rec.box),  # type: ignore[arg-type]
            emotion=rec.emotion,
            confidence=rec.confidence,
            entropy=None if entropy is None else round(entropy, 5),
            probabilities=rec.probabilities,
            models=rec.models,
            aus=rec.aus,
            speaking=rec.speaking,
            speech_action=rec.speech_action,
            hard_case_rules=rec.hard_case_rules,
            reasons=reasons,
            priority=priority(reasons, rec.confidence, entropy),
            phash=str(h),
            blur=round(sharp, 2),
            yaw=yaw,
        )
        return _Item(qf, png_bytes(crop), context_jpeg(rgb, rec.box), reasons)  # type: ignore[arg-type]

    def _store(self, item: _Item, dropped: Counter) -> int:
        q, fid = self.queue, item.face.id
        if q.has_face(fid):
            return 0
        atomic_write_bytes(q.crop_path(fid), item.crop)
        atomic_write_bytes(q.context_path(fid), item.context)
        status, evicted = q.add_face(item.face, self.options.cap)
        if status == "capped":
            dropped["cap"] += 1
            _unlink(q.crop_path(fid), q.context_path(fid))
            return 0
        if evicted is not None:
            dropped["cap"] += 1
            self.summary.kept -= 1
            _unlink(q.crop_path(evicted), q.context_path(evicted))
        if status == "added":
            self.summary.kept += 1
            self.summary.kept_reasons.update(item.reasons)
            return 1
        return 0


def _unlink(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def mine(
    paths: Sequence[str | Path],
    queue_dir: str | Path,
    options: MineOptions | None = None,
    setup: ModelSetup | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> MineSummary:
    """Mine ``paths`` (videos, images, folders) into the queue at ``queue_dir`` (made if missing); a second ``mine``
    on the same queue at once is refused. Returns the run's counts."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no sources given")
    collect_inputs(paths)  # a missing source fails before the queue is made
    options = options or MineOptions()
    qdir = Path(queue_dir)
    if qdir.exists() and not qdir.is_dir():
        raise InputError(f"{qdir}: queue folder is a file, not a folder")
    with Queue(qdir, create=True) as queue, OutputLock(queue.db_path):
        miner = Miner(queue, options, setup)
        return miner.mine(paths, progress)
