"""Face tracks across video frames: periodic detection, optical-flow propagation in between, IoU identities.

Running the detector on every frame is the slowest step of video analysis, so :class:`FaceTracker` detects every
``detect_interval`` seconds and, in between, moves each face's box and keypoints with the similarity transform
that Lucas–Kanade optical flow finds for corner points inside the face. A track whose flow fails triggers a fresh
detection at once. Identities (``face_id``) come from Hungarian matching on IoU between tracks and detections; a
face that vanished (occluded, missed) waits ``reid_seconds`` among the lost, and a new detection near its last place
whose colour histogram (hue × saturation, a cheap appearance cue) matches takes its id back. While faces keep
appearing, detection runs three times as often (crowds walking into the frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ferkit.faces.detectors import Detector, Face, iou
from ferkit.media.images import Frame

_FLOW_FACE_PX = 80.0
_LK = {"winSize": (11, 11), "maxLevel": 2, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)}


@dataclass
class Track:
    """A face followed over frames."""

    face_id: int
    face: Face
    points: np.ndarray | None = None  # (N, 1, 2) float32 corners inside the face, for optical flow
    tracked: bool = False  # True when the current face comes from optical flow, not the detector
    misses: int = 0  # consecutive detections that did not find this face
    look: np.ndarray | None = None  # (32,) hue × saturation histogram (sums to 1), averaged over detections
    lost_at: float | None = None  # video time the track was lost (lost tracks only)


@dataclass
class FaceTracker:
    """Detect, propagate and identify faces frame by frame (see module docstring).

    ``detect_interval`` is in seconds of video time; ``0`` detects on every frame. Stills always detect (tiled,
    so small faces in group photos are found). A face the detector misses is kept by optical flow for up to
    ``max_misses`` detections, so one missed detection neither drops the face nor changes its id. Optical flow
    only bridges dense sampling: when consecutive samples are more than ``max_flow_gap`` seconds apart (e.g.
    ``--fps 5``), every sample is detected and identities come from IoU with the previous sample's boxes. Lost
    faces can take their id back for ``reid_seconds`` (see the module docstring); after a detection that found a new
    face, the next one comes after a third of ``detect_interval``. Detection runs on the whole frame at the
    detector's own input size at least every ``full_interval`` seconds (and whenever no face is tracked or the last
    detection found a new one); in between it runs on the frame shrunk so the smallest tracked face is
    ``coarse_face_px`` wide (big faces cost a fraction: ``benchmarks/video_speed.py``).
    """

    detector: Detector
    detect_interval: float = 0.3
    min_iou: float = 0.3
    max_misses: int = 2
    max_flow_gap: float = 0.1
    reid_seconds: float = 2.0
    min_look: float = 0.5
    full_interval: float = 1.0
    coarse_face_px: float = 64.0
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)
    _next_id: int = 0
    _interval: float | None = None  # the current detection interval (detect_interval, or a third after new faces)
    _last_detect: float | None = None
    _last_full: float | None = None  # video time of the last whole-frame detection at full input size
    _prev_gray: np.ndarray | None = None
    _prev_time: float | None = None

    def update(self, frame: Frame) -> list[Track]:
        """Return the tracks present in ``frame`` (possibly empty)."""
        due = (
            frame.timestamp is None
            or self._last_detect is None
            or frame.timestamp - self._last_detect >= (self._interval or self.detect_interval) - 1e-6
            or not self.detector.gives_keypoints
        )
        dense = (
            frame.timestamp is not None
            and self._prev_time is not None
            and frame.timestamp - self._prev_time <= self.max_flow_gap
        )
        if self.tracks and dense:
            due = self._propagate(frame.gray) or due
        elif frame.timestamp is not None:
            due = True  # sparse sampling: faces may have moved too far for flow; detect every sample
        if due:
            self._detect(frame)
        self._prev_gray, self._prev_time = frame.gray, frame.timestamp
        return self.tracks

    def state(self) -> dict:
        """The tracker's state as plain JSON values (for resume checkpoints); the previous frame's pixels are not
        in it: :meth:`restore` takes them from the frame decoded again."""
        return {
            "next_id": self._next_id,
            "last_detect": self._last_detect,
            "prev_time": self._prev_time,
            "interval": self._interval,
            "last_full": self._last_full,
            "tracks": [_track_state(t) for t in self.tracks],
            "lost": [_track_state(t) for t in self.lost],
        }

    def restore(self, state: dict, prev_gray: np.ndarray) -> None:
        """Continue from :meth:`state` taken after the frame whose gray image is ``prev_gray``."""
        self._next_id = int(state["next_id"])
        self._last_detect = None if state["last_detect"] is None else float(state["last_detect"])
        self._prev_time = None if state["prev_time"] is None else float(state["prev_time"])
        self._interval = None if state.get("interval") is None else float(state["interval"])
        self._last_full = None if state.get("last_full") is None else float(state["last_full"])
        self.tracks = [_track_from(t) for t in state["tracks"]]
        self.lost = [_track_from(t) for t in state.get("lost", [])]
        self._prev_gray = prev_gray

    def _detect(self, frame: Frame) -> None:
        rgb = frame.rgb()
        now = frame.timestamp
        faces = self.detector.detect_still(rgb) if now is None else self._detect_frame(rgb, now)
        if now is not None:  # forget faces lost too long ago
            self.lost = [t for t in self.lost if t.lost_at is not None and now - t.lost_at <= self.reid_seconds]
        old = self.tracks
        looks = [_look(rgb, f.box) for f in faces]
        every = list(range(len(faces)))
        matched = _assign(old, every, lambda t, j: 1.0 - iou(t.face.box, faces[j].box), 1.0 - self.min_iou)
        rest = [j for j in range(len(faces)) if j not in matched]
        found = _assign(self.lost, rest, lambda t, j: self._reid_cost(t, faces[j], looks[j], now), 1.0 - self.min_look)
        tracks, new = [], False
        for j, face in enumerate(faces):
            prior = old[matched[j]] if j in matched else self.lost[found[j]] if j in found else None
            if prior is None:
                fid, self._next_id, new = self._next_id, self._next_id + 1, True
            else:
                fid = prior.face_id
            look = looks[j] if prior is None or prior.look is None else 0.5 * prior.look + 0.5 * looks[j]
            tracks.append(Track(fid, face, self._corners(frame.gray, face), look=look))
        kept = set(matched.values())
        self.lost = [t for i, t in enumerate(self.lost) if i not in set(found.values())]
        for r, t in enumerate(old):  # missed by the detector but still followed by optical flow
            overlaps = any(iou(t.face.box, f.box) > 0.1 for f in faces)  # drifted onto a detected face: drop
            if r not in kept and t.tracked and t.misses < self.max_misses and not overlaps:
                t.misses += 1
                t.points = self._corners(frame.gray, t.face)
                tracks.append(t)
            elif r not in kept:
                self._lose(t, now)
        self.tracks = sorted(tracks, key=lambda t: t.face_id)
        self._last_detect = now
        self._interval = self.detect_interval / 3 if new and old else self.detect_interval
        if new:
            self._last_full = None  # faces are arriving: the next detection looks at the whole frame again

    def _detect_frame(self, rgb: np.ndarray, now: float) -> list[Face]:
        """Whole-frame detection when due (see the class docstring), else on the frame shrunk to the tracked faces."""
        s = min([self.coarse_face_px / max(t.face.box[2], 1.0) for t in self.tracks], default=1.0)
        if self._last_full is None or now - self._last_full >= self.full_interval - 1e-6 or s > 0.8:
            self._last_full = now
            return self.detector.detect(rgb)
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        sx, sy = w / small.shape[1], h / small.shape[0]
        return [f.transformed(np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0]])) for f in self.detector.detect(small)]

    def _lose(self, t: Track, now: float | None) -> None:
        """Keep a vanished track among the lost (video only: stills have no time to wait in)."""
        if now is not None and t.look is not None:
            t.lost_at, t.points, t.tracked = now, None, False
            self.lost.append(t)

    def _reid_cost(self, t: Track, face: Face, look: np.ndarray, now: float | None) -> float:
        """1 − histogram intersection for a lost track near enough (in place and size) to be this face, else 1."""
        x, y, w, h = t.face.box
        fx, fy, fw, fh = face.box
        gap = 0.0 if now is None or t.lost_at is None else now - t.lost_at
        near = np.hypot(fx + fw / 2 - x - w / 2, fy + fh / 2 - y - h / 2) <= max(w, fw) * (1.0 + 3.0 * gap)
        if t.look is None or not near or not 0.67 <= fw / max(w, 1e-6) <= 1.5:
            return 1.0
        return 1.0 - float(np.minimum(t.look, look).sum())

    @staticmethod
    def _corners(gray: np.ndarray, face: Face) -> np.ndarray | None:
        """Corner points inside the face box (found in the box's own crop: cheaper than a masked full frame)."""
        h, w = gray.shape
        x, y, bw, bh = face.box
        x0, y0, x1, y1 = max(0, round(x)), max(0, round(y)), min(w, round(x + bw)), min(h, round(y + bh))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        pts = cv2.goodFeaturesToTrack(gray[y0:y1, x0:x1], maxCorners=20, qualityLevel=0.01, minDistance=4)
        return None if pts is None else pts + np.array([x0, y0], np.float32)

    def _propagate(self, gray: np.ndarray) -> bool:
        """Move every track by optical flow, dropping those that cannot be followed; True if any was lost."""
        kept = []
        for t in self.tracks:
            moved = _flow(self._prev_gray, gray, t)
            if moved is not None:
                t.face, t.points, t.tracked = moved[0], moved[1], True
                kept.append(t)
            else:
                self._lose(t, self._prev_time)
        lost = len(kept) < len(self.tracks)
        self.tracks = kept
        return lost


def _assign(
    tracks: list[Track], faces: list[int], cost: Callable[[Track, int], float], max_cost: float
) -> dict[int, int]:
    """Hungarian matching of face indices to tracks by ``cost(track, face)``, pairs up to ``max_cost``: {face: track}"""
    if not tracks or not faces:
        return {}
    m = np.array([[cost(t, j) for j in faces] for t in tracks])
    return {faces[c]: r for r, c in zip(*linear_sum_assignment(m), strict=True) if m[r, c] <= max_cost}


def _look(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Hue × saturation histogram (8 × 4 bins, sums to 1) of the middle of a face box: a cheap appearance cue."""
    h, w = rgb.shape[:2]
    x, y, bw, bh = box
    x0, y0 = min(w - 1, max(0, int(x + bw / 4))), min(h - 1, max(0, int(y + bh / 4)))
    x1, y1 = max(x0 + 1, min(w, int(x + 3 * bw / 4))), max(y0 + 1, min(h, int(y + 3 * bh / 4)))
    crop = cv2.resize(rgb[y0:y1, x0:x1], (16, 16), interpolation=cv2.INTER_AREA) if rgb.ndim == 3 else None
    if crop is None:
        return np.full(32, 1 / 32)
    hist = cv2.calcHist([cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)], [0, 1], None, [8, 4], [0, 180, 0, 256]).ravel()
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float64)


def _track_state(t: Track) -> dict:
    """A track as plain JSON values."""
    return {
        "face_id": t.face_id,
        "box": [float(v) for v in t.face.box],
        "score": float(t.face.score),
        "keypoints": {k: [float(v[0]), float(v[1])] for k, v in t.face.keypoints.items()},
        "points": None if t.points is None else t.points.reshape(-1).tolist(),
        "tracked": t.tracked,
        "misses": t.misses,
        "look": None if t.look is None else t.look.tolist(),
        "lost_at": t.lost_at,
    }


def _track_from(t: dict) -> Track:
    """The track :func:`_track_state` wrote (``ValueError``/``KeyError``/``TypeError`` on a damaged one)."""
    if len(t["box"]) != 4:
        raise ValueError("a track box is not 4 numbers")
    return Track(
        int(t["face_id"]),
        Face(
            tuple(float(v) for v in t["box"]),  # type: ignore[arg-type]
            float(t["score"]),
            {str(k): (float(v[0]), float(v[1])) for k, v in t["keypoints"].items()},
        ),
        None if t["points"] is None else np.asarray(t["points"], np.float32).reshape(-1, 1, 2),
        bool(t["tracked"]),
        int(t["misses"]),
        None if t.get("look") is None else np.asarray(t["look"], np.float64),
        None if t.get("lost_at") is None else float(t["lost_at"]),
    )


def _flow(prev: np.ndarray, gray: np.ndarray, t: Track) -> tuple[Face, np.ndarray] | None:
    """The track's face moved from ``prev`` to ``gray`` by the similarity fitted to LK flow, or None.

    Flow runs on a window around the face (the box enlarged by a quarter of its size each side), not the whole
    frame: building the image pyramids is most of LK's cost.
    """
    if t.points is None or len(t.points) < 6:
        return None
    h, w = gray.shape
    x, y, bw, bh = t.face.box
    x0, y0 = max(0, int(x - bw / 4)), max(0, int(y - bh / 4))
    x1, y1 = min(w, int(x + 1.25 * bw) + 1), min(h, int(y + 1.25 * bh) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    off = np.array([x0, y0], np.float32)
    scale = min(1.0, _FLOW_FACE_PX / max(bw, bh, 1.0))  # track big faces at ~80 px: 4-10x fewer pixels
    a, b = prev[y0:y1, x0:x1], gray[y0:y1, x0:x1]
    if scale < 1.0:
        a = cv2.resize(a, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    start = ((t.points - off) * scale).astype(np.float32)
    new, status, _ = cv2.calcOpticalFlowPyrLK(a, b, start, None, **_LK)
    ok = status.ravel() == 1
    if ok.sum() < 6:
        return None
    new = new / scale + off
    m, inliers = cv2.estimateAffinePartial2D(t.points[ok], new[ok], method=cv2.RANSAC, ransacReprojThreshold=2.0)
    if m is None or inliers.sum() < 6:
        return None
    return t.face.transformed(m), new[ok][inliers.ravel() == 1].reshape(-1, 1, 2)
