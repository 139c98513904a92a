"""Visual speech detection: P(speaking) per face track from mouth movement over a short window.

Per frame, :func:`mouth_features` takes MediaPipe's 478-point face mesh and 52 blendshapes for one face. Per track, a
:class:`SpeechDetector` rigidly aligns the lip and chin points to the head (Kabsch on forehead, eye and nose points, so
head turns and nods do not count as mouth movement), keeps the last ``window_s`` seconds, and measures two
frame-rate-normalised movement rates:

* ``lip_motion``: mean over consecutive frames of ||d(lip + chin points)|| / sqrt(dt), the points in inter-ocular units;
* ``blend_motion``: the same for 16 mouth and jaw blendshape scores (jawOpen, mouthClose, mouthFunnel, ...).

Dividing by sqrt(dt) rather than dt keeps both rates roughly constant from 5 to 30 fps: between frames 40-200 ms apart
the mouth signal behaves more like a random walk than a smooth curve, and so does landmark jitter. The probability is
``sigmoid(intercept + w_lip * ln(lip_motion) + w_blend * ln(blend_motion))``. Speaking is a moving mouth: a still
open mouth is silent, and laughing or chewing reads as speech.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from ferkit.media.state import pack_array, unpack_array

#: Lip contour (outer 20, inner 20) and chin points of the MediaPipe face mesh: what moves when speaking.
LIP_POINTS: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    152, 148, 377, 176, 400,
)  # fmt: skip
#: Points that stay put when the mouth moves (forehead, eye corners, nose bridge, temples, brows) for head alignment.
STABLE_POINTS: tuple[int, ...] = (10, 33, 263, 133, 362, 168, 6, 197, 195, 234, 454, 127, 356, 70, 300)
_EYE_OUTER = (1, 2)  # positions of 33 and 263 in STABLE_POINTS: inter-ocular distance, the unit of length
#: Mouth and jaw blendshapes whose movement counts.
BLENDSHAPES: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "mouthRollLower", "mouthRollUpper", "mouthShrugUpper", "mouthShrugLower",
    "mouthStretchLeft", "mouthStretchRight", "mouthPressLeft", "mouthPressRight",
)  # fmt: skip
_FLOOR = 1e-3  # movement rates are clipped below this before the log


@dataclass(frozen=True)
class MouthFeatures:
    """One face in one frame: ``stable`` (15, 3) and ``mouth`` (45, 3) landmark coordinates, ``blend`` (16,) scores.

    ``face_px`` is the face box width in source-image pixels (None: unknown); faces narrower than the detector's
    ``min_face_px`` are skipped because landmark jitter then looks like speech.
    """

    stable: np.ndarray
    mouth: np.ndarray
    blend: np.ndarray
    face_px: float | None = None

    @property
    def lip_gap(self) -> float:
        """Inner-lip gap (landmarks 13-14) over inter-ocular distance: 0 closed, about 0.3 wide open."""
        iod = float(np.linalg.norm(self.stable[_EYE_OUTER[0]] - self.stable[_EYE_OUTER[1]]))
        upper, lower = LIP_POINTS.index(13), LIP_POINTS.index(14)
        return float(np.linalg.norm(self.mouth[upper] - self.mouth[lower])) / max(iod, 1e-9)


def mouth_features(
    landmarks: np.ndarray, blendshapes: Mapping[str, float], face_px: float | None = None
) -> MouthFeatures:
    """Select the mouth, chin and head-alignment points from a (478, 3) mesh and the mouth blendshapes.

    Landmarks must use one unit on all three axes: MediaPipe's normalised x, y, z times the crop width, height and
    width (for a square crop the raw normalised values will do). Missing blendshape names count as 0.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] != 3:
        raise ValueError(f"expected (478, 3) face-mesh landmarks, got {lm.shape}")
    blend = np.array([float(blendshapes.get(name, 0.0)) for name in BLENDSHAPES])
    return MouthFeatures(lm[list(STABLE_POINTS)], lm[list(LIP_POINTS)], blend, face_px)


def from_mediapipe(
    result: Any, width: int, height: int, face_px: float | None = None, index: int = 0
) -> MouthFeatures | None:
    """MouthFeatures of face ``index`` in a ``FaceLandmarkerResult`` for a ``width`` x ``height`` crop, or None.

    The landmarker must run with ``output_face_blendshapes=True``.
    """
    if len(result.face_landmarks) <= index or len(result.face_blendshapes) <= index:
        return None
    lm = np.array([(p.x * width, p.y * height, p.z * width) for p in result.face_landmarks[index]])
    return mouth_features(lm, {c.category_name: c.score for c in result.face_blendshapes[index]}, face_px)


@dataclass(frozen=True)
class SpeechModel:
    """Logistic model on the log movement rates: P = sigmoid(intercept + w_lip ln(lip) + w_blend ln(blend))."""

    intercept: float
    w_lip: float
    w_blend: float

    def logit(self, lip_motion: float, blend_motion: float) -> float:
        """Log-odds of speaking for the two movement rates."""
        return (
            self.intercept
            + self.w_lip * math.log(max(lip_motion, _FLOOR))
            + self.w_blend * math.log(max(blend_motion, _FLOOR))
        )

    def probability(self, lip_motion: float, blend_motion: float) -> float:
        """P(speaking) for the two movement rates."""
        return 1.0 / (1.0 + math.exp(-self.logit(lip_motion, blend_motion)))


#: Fitted on edtalk_pose_source2 + edtalk_uncrop_Obama (all frames, at 25, 12.5, 8.3 and 5 fps), labels from
#: audio_vad with its defaults, classes weighted equally; see results.md for the held-out (leave-one-clip-out) figures.
DEFAULT_MODEL = SpeechModel(intercept=3.575, w_lip=2.682, w_blend=2.134)


def _kabsch(points: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre, rotation and scale mapping ``points`` onto the centred ``ref`` (least squares, no reflection)."""
    mu = points.mean(axis=0)
    centred = points - mu
    u, _, vt = np.linalg.svd(centred.T @ ref)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag([1.0, 1.0, d]) @ vt
    scale = math.sqrt(float((ref**2).sum()) / max(float((centred**2).sum()), 1e-12))
    return mu, rot, scale


def movement_rates(times: np.ndarray, mouth: np.ndarray, blend: np.ndarray) -> tuple[float, float]:
    """(lip_motion, blend_motion): mean ||dx|| / sqrt(dt) over consecutive rows of ``mouth`` (n, k) and ``blend``."""
    root_dt = np.sqrt(np.maximum(np.diff(times), 1e-3))
    lip = float(np.mean(np.linalg.norm(np.diff(mouth, axis=0), axis=1) / root_dt))
    bls = float(np.mean(np.linalg.norm(np.diff(blend, axis=0), axis=1) / root_dt))
    return lip, bls


class SpeechDetector:
    """Streaming P(speaking) for one face track; call :meth:`update` once per frame in time order.

    The window is ``window_s`` long, stretched to hold ``min_samples`` frames at low frame rates (0.6 s at >= 10 fps,
    1.2 s at 5 fps) and capped at ``max_window_s``. A gap over ``max_gap_s`` without a usable face restarts the
    window. The answer needs 4 frames spanning half the window; until then, and for frames without a face, it is None.
    The answer describes the window just past, so it trails the mouth by about half a window (0.3 s at >= 10 fps).
    """

    def __init__(
        self,
        model: SpeechModel = DEFAULT_MODEL,
        window_s: float = 0.6,
        min_samples: int = 6,
        max_window_s: float = 1.5,
        max_gap_s: float = 0.5,
        min_face_px: float = 48.0,
    ) -> None:
        self.model = model
        self.window_s = window_s
        self.min_samples = min_samples
        self.max_window_s = max_window_s
        self.max_gap_s = max_gap_s
        self.min_face_px = min_face_px
        self._ref: np.ndarray | None = None
        self._buf: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._last_t: float | None = None
        self.last_rates: tuple[float, float] | None = None  # movement rates behind the latest answer (for logging)

    def reset(self) -> None:
        """Forget the window and the head reference (a new face, or a cut)."""
        self._ref = None
        self._buf.clear()
        self._last_t = None
        self.last_rates = None

    def state(self) -> dict:
        """The window and head reference as plain JSON values (resume checkpoints)."""
        return {
            "ref": None if self._ref is None else pack_array(self._ref),
            "buf": [[t, pack_array(m), pack_array(b)] for t, m, b in self._buf],
            "last_t": self._last_t,
            "last_rates": None if self.last_rates is None else list(self.last_rates),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        ref = None if state["ref"] is None else unpack_array(state["ref"])
        buf = deque((float(t), unpack_array(m), unpack_array(b)) for t, m, b in state["buf"])
        if (ref is not None and ref.shape != (len(STABLE_POINTS), 3)) or any(
            m.shape != (len(LIP_POINTS) * 3,) or b.shape != (len(BLENDSHAPES),) for _, m, b in buf
        ):
            raise ValueError("speech window arrays do not fit the mouth features")
        self._ref, self._buf = ref, buf
        self._last_t = None if state["last_t"] is None else float(state["last_t"])
        rates = state["last_rates"]
        self.last_rates = None if rates is None else (float(rates[0]), float(rates[1]))

    def window_length(self) -> float:
        """Current window length in seconds (grows at low frame rates)."""
        if len(self._buf) < 2:
            return self.window_s
        dt = float(np.median(np.diff([b[0] for b in self._buf])))
        return min(max(self.window_s, self.min_samples * dt), self.max_window_s)

    def rates(self, t: float, features: MouthFeatures | None) -> tuple[float, float] | None:
        """Add a frame and return the window's (lip_motion, blend_motion), or None when the window is not ready."""
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"time went backwards: {t} < {self._last_t}")
        if self._last_t is not None and t - self._last_t > self.max_gap_s:
            self.reset()
        usable = features is not None and (features.face_px is None or features.face_px >= self.min_face_px)
        if not usable or features is None:
            return None
        if self._last_t is not None and t == self._last_t:
            return self.last_rates
        if self._ref is None:
            ref = features.stable - features.stable.mean(axis=0)
            self._ref = ref / max(float(np.linalg.norm(ref[_EYE_OUTER[0]] - ref[_EYE_OUTER[1]])), 1e-9)
        mu, rot, scale = _kabsch(features.stable, self._ref)
        aligned = ((features.mouth - mu) @ rot * scale).reshape(-1)
        self._buf.append((t, aligned, features.blend))
        self._last_t = t
        window = self.window_length()
        while self._buf and self._buf[0][0] <= t - window:
            self._buf.popleft()
        if len(self._buf) < 4 or t - self._buf[0][0] < window / 2:
            self.last_rates = None
            return None
        times, mouth, blend = zip(*self._buf, strict=True)
        self.last_rates = movement_rates(np.array(times), np.stack(mouth), np.stack(blend))
        return self.last_rates

    def update(self, t: float, features: MouthFeatures | None) -> float | None:
        """Add the frame at time ``t`` (s) and return P(speaking) over the window ending at ``t``, or None."""
        rates = self.rates(t, features)
        return None if rates is None else self.model.probability(*rates)


def speaking_track(
    times: Sequence[float], features: Sequence[MouthFeatures | None], detector: SpeechDetector | None = None
) -> np.ndarray:
    """Run a detector over one track's frames; P(speaking) per frame, NaN where it gave None."""
    det = detector or SpeechDetector()
    out = [det.update(float(t), f) for t, f in zip(times, features, strict=True)]
    return np.array([np.nan if p is None else p for p in out])


def fit_model(lip: np.ndarray, blend: np.ndarray, speaking: np.ndarray, l2: float = 1e-3) -> SpeechModel:
    """Class-balanced logistic regression of ``speaking`` on ln(lip), ln(blend) (L2 ``l2`` on the two weights)."""
    x = np.log(np.maximum(np.stack([lip, blend], axis=1), _FLOOR))
    y = np.asarray(speaking, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("need both speaking and silent frames to fit")
    w = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + x @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = np.sum(w * (np.logaddexp(0.0, z) - y * z)) + l2 * float(theta[1:] @ theta[1:])
        g = w * (p - y)
        grad = np.concatenate([[g.sum()], x.T @ g + 2 * l2 * theta[1:]])
        return float(nll), grad

    res = optimize.minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B")
    return SpeechModel(*(round(float(v), 3) for v in res.x))
