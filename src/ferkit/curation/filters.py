"""What makes a face worth a human look (:func:`reasons_of`), and what drops it: a static track (poster, paused
screen: :class:`StaticTracks`), a near-duplicate of a face already kept from its track (:class:`NearDuplicates`),
or a size/blur/pose floor (:func:`quality_problem`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ferkit.faces.detectors import Face


@dataclass
class MineRules:
    """Thresholds of the candidate reasons and the drop filters (the ``ferkit mine`` options)."""

    min_confidence: float = 0.5  # low_confidence: the primary model's top probability below this
    max_entropy: float = 0.75  # high_entropy: normalised entropy (0-1) of the probabilities above this
    flicker_seconds: float = 2.0  # flicker: the track's label changed ...
    flicker_changes: int = 2  # ... at least this many times within flicker_seconds
    static_seconds: float = 3.0  # static: a track whose pixels and box do not move for this long
    static_pixels: float = 2.5  # mean absolute grey-level change (0-255) of the face patch that counts as motion
    static_shift: float = 0.08  # box centre/size change (fraction of the box side) that counts as motion; above the
    # detector's own jitter on a still face (YuNet: about 3 % of the side in size from frame to frame)
    min_face: int = 40  # faces narrower than this (pixels) are dropped (too_small)
    min_sharpness: float = 15.0  # variance of the Laplacian of the aligned grey crop below this: blurry
    max_yaw: float = 0.55  # |nose offset from the eye midpoint| / eye distance above this: extreme_pose
    dedupe_bits: int = 6  # perceptual-hash Hamming distance at or below which a face repeats one kept in its track


#: Weight of each reason in the priority score (plus the model's uncertainty, see :func:`priority`).
REASON_WEIGHTS = {
    "disagreement": 2.0,
    "hard_case": 2.0,
    "speech_action": 1.5,
    "flicker": 1.0,
    "low_confidence": 1.0,
    "high_entropy": 1.0,
}
REASONS = tuple(REASON_WEIGHTS)
DROP_REASONS = ("static", "near_duplicate", "too_small", "blurry", "extreme_pose", "cap")


def norm_entropy(probs: dict[str, float] | None) -> float | None:
    """Entropy of ``probs`` divided by its maximum (0: certain, 1: uniform)."""
    if not probs or len(probs) < 2:
        return None
    p = np.clip(np.array(list(probs.values()), np.float64), 1e-12, 1.0)
    p = p / p.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(p)))


class Flicker:
    """Per track, the times the primary label changed; :meth:`update` says whether it flickers now."""

    def __init__(self, rules: MineRules) -> None:
        self.rules = rules
        self.last: dict[int, str] = {}
        self.changes: dict[int, deque[float]] = {}

    def update(self, track: int, t: float | None, emotion: str | None) -> bool:
        if emotion is None or t is None:
            return False
        changes = self.changes.setdefault(track, deque())
        if self.last.get(track, emotion) != emotion:
            changes.append(t)
        self.last[track] = emotion
        while changes and changes[0] < t - self.rules.flicker_seconds:
            changes.popleft()
        return len(changes) >= self.rules.flicker_changes

    def state(self) -> dict[str, Any]:
        return {"last": list(self.last.items()), "changes": [(k, list(v)) for k, v in self.changes.items()]}

    def restore(self, state: dict[str, Any]) -> None:
        self.last = {int(k): str(v) for k, v in state["last"]}
        self.changes = {int(k): deque(float(t) for t in v) for k, v in state["changes"]}


def reasons_of(rec: dict[str, Any], rules: MineRules, flickers: bool) -> list[str]:
    """Why a face record is a candidate (empty: it is not)."""
    out = []
    models = rec.get("models") or {}
    if len({m.get("emotion") for m in models.values() if m.get("emotion")}) > 1:
        out.append("disagreement")
    if rec.get("hard_case_rules"):
        out.append("hard_case")
    if rec.get("speech_action"):
        out.append("speech_action")
    if flickers:
        out.append("flicker")
    if rec.get("confidence") is not None and rec["confidence"] < rules.min_confidence:
        out.append("low_confidence")
    h = norm_entropy(rec.get("probabilities"))
    if h is not None and h > rules.max_entropy:
        out.append("high_entropy")
    return out


def priority(reasons: list[str], confidence: float | None, entropy: float | None) -> float:
    """Higher first: the reasons' weights plus the model's uncertainty (1 - confidence, entropy)."""
    score = sum(REASON_WEIGHTS.get(r, 0.5) for r in reasons)
    return round(score + (1 - (confidence if confidence is not None else 1)) + (entropy or 0), 6)


def face_patch(gray: np.ndarray, box: list[float], size: int = 24) -> np.ndarray | None:
    """The box's grey pixels, blurred a little and resized to ``size``² (float), or None when off-frame."""
    h, w = gray.shape[:2]
    x, y, bw, bh = box
    x0, y0, x1, y1 = max(0, int(x)), max(0, int(y)), min(w, int(x + bw)), min(h, int(y + bh))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    patch = cv2.resize(gray[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(patch, (3, 3), 0).astype(np.float32)


@dataclass
class _Still:
    ref: np.ndarray
    box: list[float]
    start: float
    last: float
    pending: list[tuple[float, Any]] = field(default_factory=list)


class StaticTracks:
    """The static-object tracker: per track, how long its face patch and box have stayed still.

    A candidate is held (:meth:`offer`) until its track moves (kept) or stays still for ``static_seconds`` (dropped,
    with every later candidate of that still run). Tracks not seen for ``stale`` seconds are evicted (their held
    candidates decided then). ``release(item)`` stores a kept item; ``drop(item)`` counts a dropped one.
    """

    def __init__(
        self, rules: MineRules, release: Callable[[Any], None], drop: Callable[[Any], None], stale: float = 2.0
    ):
        self.rules, self.release, self.drop, self.stale = rules, release, drop, stale
        self.tracks: dict[int, _Still] = {}

    def _moved(self, s: _Still, patch: np.ndarray, box: list[float]) -> bool:
        side = max(s.box[2], s.box[3], 1.0)
        shift = max(
            abs((box[0] + box[2] / 2) - (s.box[0] + s.box[2] / 2)),
            abs((box[1] + box[3] / 2) - (s.box[1] + s.box[3] / 2)),
            abs(box[2] - s.box[2]),
        )
        return shift > self.rules.static_shift * side or float(np.abs(patch - s.ref).mean()) > self.rules.static_pixels

    def _close(self, s: _Still) -> None:
        """End a still run: its held candidates are kept when it was short, dropped when it lasted."""
        static = s.last - s.start >= self.rules.static_seconds
        for _, item in s.pending:
            (self.drop if static else self.release)(item)
        s.pending = []

    def update(self, track: int, t: float, box: list[float], gray: np.ndarray) -> None:
        """A sighting of ``track`` at time ``t`` in the grey frame ``gray`` (every face record, candidate or not).

        The pixels are compared inside the still run's reference box, not the detector's new box, so the
        detector's frame-to-frame jitter on a poster does not read as motion.
        """
        s = self.tracks.get(track)
        if s is None:
            patch = face_patch(gray, box)
            if patch is not None:
                self.tracks[track] = _Still(patch, list(box), t, t)
            return
        patch = face_patch(gray, s.box)
        if patch is None:
            return
        if self._moved(s, patch, box):
            self._close(s)
            fresh = face_patch(gray, box)
            s.ref, s.box, s.start = (patch if fresh is None else fresh), list(box), t
        s.last = t
        if self.is_static(track):
            self._close(s)

    def is_static(self, track: int) -> bool:
        s = self.tracks.get(track)
        return s is not None and s.last - s.start >= self.rules.static_seconds

    def offer(self, track: int, t: float, item: Any) -> None:
        """A candidate of ``track`` seen at ``t`` (after :meth:`update` for the same sighting)."""
        if self.is_static(track):
            self.drop(item)
        elif track not in self.tracks:
            self.release(item)
        else:
            self.tracks[track].pending.append((t, item))

    def evict(self, now: float) -> None:
        """Decide and forget tracks last seen more than ``stale`` seconds before ``now``."""
        for track in [k for k, s in self.tracks.items() if s.last < now - self.stale]:
            self._close(self.tracks.pop(track))

    def finish(self) -> None:
        """End of a source: decide every held candidate."""
        for s in self.tracks.values():
            self._close(s)
        self.tracks.clear()

    def state(self, encode: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """The tracks and their held candidates (``encode``d) as JSON-able data (a resume checkpoint)."""
        return [
            {
                "track": k,
                "ref": s.ref.tolist(),
                "box": s.box,
                "start": s.start,
                "last": s.last,
                "pending": [(t, encode(item)) for t, item in s.pending],
            }
            for k, s in self.tracks.items()
        ]

    def restore(self, state: list[dict[str, Any]], decode: Callable[[Any], Any]) -> None:
        self.tracks = {
            int(d["track"]): _Still(
                np.array(d["ref"], np.float32),
                [float(v) for v in d["box"]],
                float(d["start"]),
                float(d["last"]),
                [(float(t), decode(item)) for t, item in d["pending"]],
            )
            for d in state
        }


class NearDuplicates:
    """Perceptual hashes (``imagehash.phash``) of the faces kept per track; a face within ``dedupe_bits`` of one of
    the last ``keep`` kept faces of its track is a near-duplicate."""

    def __init__(self, rules: MineRules, keep: int = 64) -> None:
        self.rules, self.keep = rules, keep
        self.seen: dict[int, deque] = {}

    @staticmethod
    def hash(crop: np.ndarray):
        import imagehash
        from PIL import Image

        return imagehash.phash(Image.fromarray(crop))

    def is_duplicate(self, track: int, h) -> bool:
        return any(h - old <= self.rules.dedupe_bits for old in self.seen.get(track, ()))

    def add(self, track: int, h) -> None:
        self.seen.setdefault(track, deque(maxlen=self.keep)).append(h)

    def state(self) -> list[tuple[int, list[str]]]:
        return [(k, [str(h) for h in v]) for k, v in self.seen.items()]

    def restore(self, state: list[tuple[int, list[str]]]) -> None:
        import imagehash

        self.seen = {int(k): deque((imagehash.hex_to_hash(h) for h in v), maxlen=self.keep) for k, v in state}


def yaw_of(face: Face) -> float | None:
    """Head turn proxy: the nose's horizontal offset from the eye midpoint over the eye distance (0: frontal)."""
    if not face.has_keypoints:
        return None
    (lx, _), (rx, _), (nx, _) = face.keypoints["left_eye"], face.keypoints["right_eye"], face.keypoints["nose"]
    eyes = abs(rx - lx)
    return None if eyes < 1 else round(float((nx - (lx + rx) / 2) / eyes), 4)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a crop's grey pixels (low: blurred)."""
    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def quality_problem(box_width: float, sharp: float | None, yaw: float | None, rules: MineRules) -> str | None:
    """The floor a face falls below (``too_small``, ``blurry``, ``extreme_pose``), or None."""
    if box_width < rules.min_face:
        return "too_small"
    if sharp is not None and sharp < rules.min_sharpness:
        return "blurry"
    if yaw is not None and abs(yaw) > rules.max_yaw:
        return "extreme_pose"
    return None
