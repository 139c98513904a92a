"""Action units per face: a landmarker fit on a crop around the face → features → AU heads, with an optional
per-track neutral baseline.

Keys: ``AU01`` … ``AU27`` (18 learned heads), ``AU43`` (eyes closed, a rule, unvalidated) and ``AU02_L/_R``,
``AU12_L/_R``, ``AU14_L/_R`` (the subject's left and right). Each presence probability is the head's logistic output
shifted so that the head's F1-chosen threshold sits at 0.5 (``p >= 0.5`` = present); intensities are 0–1 and
uncalibrated (CK+ has no intensity codes). The heads are plain numbers in ``ferkit/assets/aus/au_heads.json``
(hash-checked; the card with data, split and figures is ``au_card.json`` beside it).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import ModelError
from ferkit.faces.au_features import FEATURE_NAMES, MIRROR_INDEX, features
from ferkit.faces.au_heads import AUModel, au43
from ferkit.faces.landmarker import BLENDSHAPE_NAMES, FaceLandmarker, load_verified, prepare_crop
from ferkit.faces.speech import MouthFeatures, mouth_features
from ferkit.media.state import pack_array, unpack_array

AU_NUMBERS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26, 27)
SIDED_AUS = (2, 12, 14)
#: Every key of a record's ``aus`` / ``au_intensity``, in column order.
AU_KEYS: tuple[str, ...] = (
    *(f"AU{n:02d}" for n in AU_NUMBERS),
    "AU43",
    *(f"AU{n:02d}_{side}" for n in SIDED_AUS for side in ("L", "R")),
)
AU_DIR = Path(__file__).parents[1] / "assets" / "aus"
HEADS_FILE = AU_DIR / "au_heads.json"
#: SHA-256 of the shipped heads file (updated whenever the heads are retrained; the card records the same value).
HEADS_SHA256 = "7aa42d352dfad73d1e42fa2f2082bcd096676a21b42b00461e547859776908bd"
#: Crops for the landmarker: the face box padded by this share of its side on every edge, resized to ``CROP_SIZE``.
CROP_PAD, CROP_SIZE = 0.4, 192
#: ``--crops`` images (tight face crops such as FER2013/CK+): padding and size that fit every CK+ crop (the card).
STILL_PAD, STILL_SIZE = 0.25, 192


def _helper_key(key: str) -> str:
    """``AU01`` → the heads file's ``AU1`` (and ``AU12_L`` → ``AU12_L``)."""
    base, _, side = key.partition("_")
    return f"AU{int(base[2:])}" + (f"_{side}" if side else "")


@dataclass(frozen=True)
class AuFit:
    """What the landmarker gives for one face: the AU feature vector, the mouth for visual speech, and the head pose
    ``(pitch, yaw, roll)`` in degrees (pitch > 0: head tilted back)."""

    features: np.ndarray
    mouth: MouthFeatures
    pose: tuple[float, float, float]


def pose_angles(matrix: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees from MediaPipe's facial transformation matrix (rotation part, XYZ order)."""
    r = np.asarray(matrix, np.float64)[:3, :3]
    scale = np.linalg.norm(r[:, 0])
    r = r / max(scale, 1e-9)
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -r[2, 0]))))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return round(pitch, 2), round(yaw, 2), round(roll, 2)


def au_crop(rgb: np.ndarray, box: tuple[float, float, float, float] | list[float]) -> np.ndarray:
    """A square RGB crop around a face box (``CROP_PAD`` on every edge, edges replicated), ``CROP_SIZE`` px."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1 + 2 * CROP_PAD)
    cx, cy = x + w / 2, y + h / 2
    s = CROP_SIZE / max(side, 1.0)
    m = np.array([[s, 0, CROP_SIZE / 2 - s * cx], [0, s, CROP_SIZE / 2 - s * cy]], np.float64)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, m, (CROP_SIZE, CROP_SIZE), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def still_crop(rgb: np.ndarray) -> np.ndarray:
    """A whole image that already is a tight face crop (``--crops``), padded and upscaled for the landmarker."""
    return prepare_crop(rgb, STILL_PAD, STILL_SIZE)[0]


def _fit(lm: FaceLandmarker, crop: np.ndarray, face_px: float | None) -> AuFit | None:
    res = lm.fit(np.ascontiguousarray(crop))
    if res is None:
        return None
    w, h = res.image_size
    pts = res.landmarks.astype(np.float64) * np.array([w, h, w])
    blend = {n: float(v) for n, v in zip(BLENDSHAPE_NAMES, res.blendshapes, strict=True)}
    return AuFit(features(res), mouth_features(pts, blend, face_px), pose_angles(res.matrix))


_PROCESS_LANDMARKER: FaceLandmarker | None = None  # one per landmarker worker process


def _init_process() -> None:
    global _PROCESS_LANDMARKER
    _PROCESS_LANDMARKER = FaceLandmarker()


def _fit_in_process(crops: list[np.ndarray], face_px: list[float | None]) -> list[AuFit | None]:
    assert _PROCESS_LANDMARKER is not None
    return [_fit(_PROCESS_LANDMARKER, c, px) for c, px in zip(crops, face_px, strict=True)]


_POOLS: dict[int, ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _process_pool(processes: int) -> ProcessPoolExecutor:
    """A process pool shared by every analyzer of this process (started once, on first use).

    Workers are spawned (never forked: the parent runs threads) and need only ferkit's own modules, so they are
    started with ``__main__``'s file and spec hidden: a user's script without an ``if __name__ == "__main__"`` guard
    is then not run again in each worker."""
    with _POOLS_LOCK:
        if processes not in _POOLS:
            ctx = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_process)
            main = sys.modules.get("__main__")
            saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
            try:
                if main is not None:
                    main.__dict__.pop("__file__", None)
                    main.__dict__["__spec__"] = None
                started = [pool.submit(time.sleep, 0.05) for _ in range(processes)]  # spawns every worker now
            finally:
                if main is not None:
                    main.__dict__.update(saved)
                    if "__spec__" not in saved:
                        main.__dict__.pop("__spec__", None)
            for f in started:
                f.result()
            _POOLS[processes] = pool
        return _POOLS[processes]


class LandmarkerPool:
    """Fits faces with MediaPipe's landmarker. MediaPipe holds the GIL while it runs (two threads fit no faster than
    one, measured), so with ``processes`` > 0 the fits run in that many worker processes (spawned once per Python
    process and shared); with 0, in the calling thread (one landmarker per thread)."""

    def __init__(self, processes: int = 0) -> None:
        self._local = threading.local()
        self.processes = processes
        load_verified()  # hash-check the bundle here, before any work (each worker builds its own task on first use)

    def fit(self, crop: np.ndarray, face_px: float | None = None) -> AuFit | None:
        """Fit one crop in this thread; ``None`` when the landmarker finds no face in it."""
        lm: FaceLandmarker | None = getattr(self._local, "landmarker", None)
        if lm is None:
            lm = self._local.landmarker = FaceLandmarker()
        return _fit(lm, crop, face_px)

    def fit_many(self, crops: list[np.ndarray], face_px: list[float | None]) -> list[AuFit | None]:
        """Fit several crops (split over the worker processes when the pool has processes), in order."""
        if not crops:
            return []
        if self.processes <= 0:
            return [self.fit(c, px) for c, px in zip(crops, face_px, strict=True)]
        pool, step = _process_pool(self.processes), -(-len(crops) // self.processes)
        parts = [
            pool.submit(_fit_in_process, crops[i : i + step], face_px[i : i + step]) for i in range(0, len(crops), step)
        ]
        return [fit for part in parts for fit in part.result()]


class AuModel:
    """The AU heads as ``ferkit`` keys: :meth:`predict` gives (presence probabilities, intensities) for one feature
    vector; ``neutral`` is the population-neutral feature vector the per-track baseline aligns to."""

    def __init__(self, heads: AUModel, neutral: np.ndarray, sha256: str) -> None:
        self.heads, self.neutral, self.sha256 = heads, neutral, sha256
        # Every learned head as one row of a dense linear map (logit = W x + b), so a face costs one mat-vec.
        self._keys = [k for k in AU_KEYS if k != "AU43"]
        n = len(FEATURE_NAMES)
        w, b, shift, hi = np.zeros((len(self._keys), n)), np.zeros(len(self._keys)), [], []
        for i, key in enumerate(self._keys):
            name = _helper_key(key)
            head = heads.heads[name] if "_" not in name else heads.lateral[name.split("_")[0]]
            row = np.zeros(n)
            row[head.index] = head.coef / head.scale
            if name.endswith("_R"):  # the right side is the left head applied to the mirrored vector
                row = row[np.argsort(MIRROR_INDEX)]
            w[i], b[i] = row, head.intercept - float(np.sum(head.coef * head.mean / head.scale))
            t = head.threshold
            shift.append(math.log(t / (1 - t)))
            hi.append(head.logit_hi)
        self._w, self._b, self._shift, self._hi = w, b, np.array(shift), np.array(hi)

    @classmethod
    def load(cls, path: str | Path | None = None, sha256: str | None = HEADS_SHA256) -> AuModel:
        """Read and hash-check a heads file (default: the shipped one); ``ModelError`` with one line if it fails."""
        path = Path(path) if path is not None else HEADS_FILE
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"{path}: cannot read the AU heads ({e.strerror or e})") from None
        got = hashlib.sha256(data).hexdigest()
        if sha256 is not None and got != sha256:
            raise ModelError(f"{path}: SHA-256 mismatch (expected {sha256}, got {got}); reinstall")
        try:
            raw = json.loads(data)
            heads = AUModel.from_dict(raw)
            neutral = np.asarray(raw["neutral_reference"], np.float64)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{path}: not a ferkit AU heads file ({e})") from None
        if neutral.shape != (len(raw["feature_names"]),) or not np.isfinite(neutral).all():
            raise ModelError(f"{path}: neutral_reference must be {len(raw['feature_names'])} finite numbers")
        return cls(heads, neutral, got)

    def presence(self, x: np.ndarray) -> np.ndarray:
        """Presence probabilities of the learned heads for feature rows ``x`` (N, F) → (N, K), unrounded, in
        :data:`AU_KEYS` order without ``AU43`` (the order :meth:`predict` lists them)."""
        z = np.atleast_2d(np.asarray(x, np.float64)) @ self._w.T + self._b - self._shift  # threshold at 0
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    @property
    def learned_keys(self) -> list[str]:
        """The keys of :meth:`presence`'s columns."""
        return list(self._keys)

    def predict(self, x: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
        """``({key: presence probability}, {key: intensity})`` over :data:`AU_KEYS`, rounded to 4 decimals."""
        x = np.asarray(x, np.float64)
        z = self._w @ x + self._b - self._shift  # threshold at 0
        p = self.presence(x)[0]
        inten = np.clip(z / np.maximum(self._hi - self._shift, 1e-6), 0.0, 1.0)
        probs = dict(zip(self._keys, np.round(p, 4).tolist(), strict=True))
        intens = dict(zip(self._keys, np.round(inten, 4).tolist(), strict=True))
        e = au43(x)  # a rule: its score is the smaller eyeBlink, capped below 0.5 unless the rule holds
        probs["AU43"] = round(e.probability if e.present else min(e.probability, 0.49), 4)
        intens["AU43"] = round(float(e.intensity), 4)
        return {k: probs[k] for k in AU_KEYS}, {k: intens[k] for k in AU_KEYS}


#: Upper-face AUs: frames without any of them feed the per-track baseline.
EXPRESSIVE_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09")
#: Features the baseline corrects: the upper face (brows, lids, eyes, cheeks, nose), whose resting shape differs
#: from person to person but which speech leaves alone. Mouth features are not corrected: in conversation their
#: running statistics are those of speech, not of a neutral mouth.
UPPER_FACE_PREFIXES = (
    "bs_brow", "bs_eye", "bs_cheekSquint", "bs_noseSneer", "brow_", "eye_", "upper_lid", "lower_lid", "lid_iris",
    "infraorb", "glabella", "alar_h", "nose_wide", "cheek_h",
)  # fmt: skip
UPPER_FACE = np.array([n.startswith(UPPER_FACE_PREFIXES) for n in FEATURE_NAMES])


class TrackBaseline:
    """A face track's own neutral: the running median of its feature vectors over the last ``window`` frames whose
    upper face looked neutral before correction (no AU of :data:`EXPRESSIVE_AUS` present). Once ``warmup`` such frames
    are in, the upper-face features (:data:`UPPER_FACE`) are shifted by (track median − population neutral), so a
    person's resting brows and lids read like the population's neutral ones. A median over every frame and every
    feature (as OpenFace does) assumes a mostly neutral person: on an expressive speaker it turns smiles into frowns
    (measured in ``benchmarks/au_baseline.py``).
    """

    def __init__(self, neutral: np.ndarray, window: int = 300, warmup: int = 10) -> None:
        self.neutral, self.warmup = neutral, warmup
        self._buf: deque[np.ndarray] = deque(maxlen=window)
        self._offset: np.ndarray | None = None

    def state(self) -> dict:
        """The running baseline as plain JSON values (resume checkpoints)."""
        return {
            "buf": [pack_array(x) for x in self._buf],
            "offset": None if self._offset is None else pack_array(self._offset),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`."""
        buf = [unpack_array(x) for x in state["buf"]]
        offset = None if state["offset"] is None else unpack_array(state["offset"])
        if any(x.shape != self.neutral.shape for x in [*buf, *([offset] if offset is not None else [])]):
            raise ValueError("baseline arrays do not fit the features")
        self._buf.clear()
        self._buf.extend(buf)
        self._offset = offset

    def correct(self, x: np.ndarray, quiet: bool) -> np.ndarray:
        """Return ``x`` corrected by the baseline so far (uncorrected during warm-up); a ``quiet`` (neutral-looking)
        frame also updates the baseline."""
        if quiet:
            self._buf.append(np.asarray(x, np.float64))
            if len(self._buf) >= self.warmup:
                self._offset = (np.median(np.stack(self._buf), axis=0) - self.neutral) * UPPER_FACE
        return x if self._offset is None else x - self._offset
