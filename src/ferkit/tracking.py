"""Face tracks across video frames: periodic detection, optical-flow propagation in between, IoU identities.

Running the detector on every frame is the slowest step of video analysis, so :class:`FaceTracker` detects every
``detect_interval`` seconds and, in between, moves each face's box and keypoints with the similarity transform
that Lucas–Kanade optical flow finds for corner points inside the face. A track whose flow fails triggers a fresh
detection at once. Identities (``face_id``) come from Hungarian matching on IoU between tracks and detections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ferkit.faces import Detector, Face
from ferkit.video import Frame

_LK = {"winSize": (21, 21), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """A face followed over frames."""

    face_id: int
    face: Face
    points: np.ndarray | None = None  # (N, 1, 2) float32 corners inside the face, for optical flow
    tracked: bool = False  # True when the current face comes from optical flow, not the detector


@dataclass
class FaceTracker:
    """Detect, propagate and identify faces frame by frame (see module docstring).

    ``detect_interval`` is in seconds of video time; ``0`` detects on every frame. Stills always detect.
    """

    detector: Detector
    detect_interval: float = 0.2
    min_iou: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 0
    _last_detect: float | None = None
    _prev_gray: np.ndarray | None = None

    def update(self, frame: Frame) -> list[Track]:
        """Return the tracks present in ``frame`` (possibly empty)."""
        due = (
            frame.timestamp is None
            or self._last_detect is None
            or frame.timestamp - self._last_detect >= self.detect_interval - 1e-6
            or not self.detector.gives_keypoints
        )
        if not due and self.tracks and not self._propagate(frame.gray):
            due = True
        if due:
            self._detect(frame)
        self._prev_gray = frame.gray
        return self.tracks

    def _detect(self, frame: Frame) -> None:
        faces = self.detector.detect(frame.rgb())
        old = self.tracks
        matched: dict[int, int] = {}
        if old and faces:
            cost = np.array([[1.0 - iou(t.face.box, f.box) for f in faces] for t in old])
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if 1.0 - cost[r, c] >= self.min_iou:
                    matched[c] = old[r].face_id
        tracks = []
        for j, face in enumerate(faces):
            fid = matched.get(j)
            if fid is None:
                fid, self._next_id = self._next_id, self._next_id + 1
            tracks.append(Track(fid, face, self._corners(frame.gray, face)))
        self.tracks = sorted(tracks, key=lambda t: t.face_id)
        self._last_detect = frame.timestamp

    @staticmethod
    def _corners(gray: np.ndarray, face: Face) -> np.ndarray | None:
        x, y, w, h = (round(v) for v in face.box)
        mask = np.zeros_like(gray)
        mask[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)] = 255
        return cv2.goodFeaturesToTrack(gray, maxCorners=40, qualityLevel=0.01, minDistance=4, mask=mask)

    def _propagate(self, gray: np.ndarray) -> bool:
        """Move every track by optical flow; False when any track cannot be followed."""
        for t in self.tracks:
            if t.points is None or len(t.points) < 6:
                return False
            new, status, _ = cv2.calcOpticalFlowPyrLK(self._prev_gray, gray, t.points, None, **_LK)
            ok = status.ravel() == 1
            if ok.sum() < 6:
                return False
            m, inliers = cv2.estimateAffinePartial2D(
                t.points[ok], new[ok], method=cv2.RANSAC, ransacReprojThreshold=2.0
            )
            if m is None or inliers.sum() < 6:
                return False
            t.face = _move_face(t.face, m)
            t.points = new[ok][inliers.ravel() == 1].reshape(-1, 1, 2)
            t.tracked = True
        return True


def _move_face(face: Face, m: np.ndarray) -> Face:
    """Apply a 2×3 similarity transform to a face's keypoints and box."""
    kp = {k: tuple(float(v) for v in m @ np.array([x, y, 1.0])) for k, (x, y) in face.keypoints.items()}
    x, y, w, h = face.box
    cx, cy = m @ np.array([x + w / 2, y + h / 2, 1.0])
    s = float(np.hypot(m[0, 0], m[1, 0]))
    return Face((cx - w * s / 2, cy - h * s / 2, w * s, h * s), face.score, kp)
