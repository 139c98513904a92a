"""MediaPipe face landmarker behind a small wrapper: 478-point mesh, 52 blendshapes and the head-pose matrix.

The bundle ships in ``ferkit/assets/landmarker/face_landmarker.task`` (Apache-2.0, notice beside it). It is read as
bytes and checked against a pinned SHA-256 before the task is created, so a corrupted or swapped file is refused with
one line naming the file and both hashes (:class:`~ferkit.errors.ModelError`).
Input is one face crop (RGB, uint8); small crops such as the
48×48 CK+/FER2013 faces must first go through :func:`prepare_crop` (pad + upscale) or the landmarker's built-in face
detector will not find them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions

from ferkit.errors import ModelError
from ferkit.faces.detectors import quiet_native_stderr

LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
#: The bundled file (data, not code).
LANDMARKER_FILE = Path(__file__).parents[1] / "assets" / "landmarker" / "face_landmarker.task"
N_LANDMARKS = 478

# The 52 blendshape names in the order MediaPipe returns them (index 0 is "_neutral").
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip

RunningMode = Literal["image", "video"]
Border = Literal["replicate", "constant", "reflect"]
_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}


@dataclass(frozen=True)
class LandmarkResult:
    """One fitted face.

    ``landmarks``: (478, 3) float32, x and y normalised to the crop's width and height, z on the scale of x (MediaPipe
    convention). ``blendshapes``: (52,) float32 in :data:`BLENDSHAPE_NAMES` order. ``matrix``: (4, 4) float32 facial
    transformation matrix (canonical face model → camera space). ``image_size``: (width, height) of the fitted image,
    needed to turn normalised coordinates back into an isotropic frame.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrix: np.ndarray
    image_size: tuple[int, int]

    def blendshape(self, name: str) -> float:
        """The score of one blendshape by name."""
        return float(self.blendshapes[BLENDSHAPE_NAMES.index(name)])


_VERIFIED: dict[tuple[str, str], bytes] = {}  # (path, sha256) -> bytes, so each worker's landmarker reads it once


def load_verified(path: str | os.PathLike[str] = LANDMARKER_FILE, sha256: str = LANDMARKER_SHA256) -> bytes:
    """The file's bytes after checking its SHA-256; ``ModelError`` (one line naming the file and both hashes) on a
    mismatch, a missing or an unreadable file."""
    key = (os.fspath(path), sha256.lower())
    if key in _VERIFIED:
        return _VERIFIED[key]
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelError(f"{os.fspath(path)}: cannot read the face landmarker ({e.strerror or e})") from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256.lower():
        raise ModelError(
            f"{os.fspath(path)}: SHA-256 mismatch (expected {sha256.lower()}, got {got}); reinstall ferkit"
        )
    _VERIFIED[key] = data
    return data


def prepare_crop(
    img: np.ndarray, pad: float = 0.25, size: int = 192, border: Border = "replicate"
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a tight face crop by ``pad`` × its side on every edge, resize to ``size``² (cubic), return it as RGB uint8.

    Also returns the 2×3 affine that maps the input crop's pixel coordinates into the prepared image, so landmarks can
    be mapped back with ``cv2.invertAffineTransform``. Gray (H, W) or (H, W, 1) input is expanded to three channels.
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    side = max(h, w)
    top = bottom = round(pad * side + (side - h) / 2)
    left = right = round(pad * side + (side - w) / 2)
    padded = cv2.copyMakeBorder(img, top, bottom, left, right, _BORDERS[border], value=(0, 0, 0))
    ph, pw = padded.shape[:2]
    interp = cv2.INTER_CUBIC if size >= max(ph, pw) else cv2.INTER_AREA
    out = cv2.resize(padded, (size, size), interpolation=interp)
    sx, sy = size / pw, size / ph
    m = np.array([[sx, 0.0, left * sx], [0.0, sy, top * sy]], np.float64)
    return np.ascontiguousarray(out), m


class FaceLandmarker:
    """MediaPipe ``FaceLandmarker`` (one face, blendshapes and transformation matrix on), created once.

    ``running_mode="video"`` lets MediaPipe track the face across consecutive calls (skipping its detector); frames
    must then come in time order and ``fit`` takes a strictly increasing ``timestamp_ms`` (auto-incremented if None).
    Use ``"image"`` for unrelated crops. The object is a context manager; ``close()`` frees the native graph.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] = LANDMARKER_FILE,
        *,
        running_mode: RunningMode = "image",
        sha256: str = LANDMARKER_SHA256,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        buf = load_verified(model_path, sha256)
        mode = vision.RunningMode.VIDEO if running_mode == "video" else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=buf),
            running_mode=mode,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        self.running_mode: RunningMode = running_mode
        with quiet_native_stderr():  # graph start-up logs TFLite/absl lines on the process's stderr
            self._task = vision.FaceLandmarker.create_from_options(options)
        self._last_ts = -1
        self._started = False

    def fit(self, crop_rgb: np.ndarray, timestamp_ms: int | None = None) -> LandmarkResult | None:
        """Fit the mesh to an RGB uint8 face crop; ``None`` when no face is found."""
        if crop_rgb.ndim != 3 or crop_rgb.shape[2] != 3 or crop_rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB crop, got {crop_rgb.shape} {crop_rgb.dtype}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(crop_rgb))
        if not self._started:  # the first inference logs too (absl warnings of the blendshape model)
            self._started = True
            with quiet_native_stderr():
                return self._fit(image, crop_rgb, timestamp_ms)
        return self._fit(image, crop_rgb, timestamp_ms)

    def _fit(self, image: mp.Image, crop_rgb: np.ndarray, timestamp_ms: int | None) -> LandmarkResult | None:
        if self.running_mode == "video":
            ts = self._last_ts + 1 if timestamp_ms is None else int(timestamp_ms)
            if ts <= self._last_ts:
                raise ValueError(f"timestamp_ms must increase: {ts} after {self._last_ts}")
            self._last_ts = ts
            res = self._task.detect_for_video(image, ts)
        else:
            res = self._task.detect(image)
        if not res.face_landmarks:
            return None
        lms = np.array([(p.x, p.y, p.z) for p in res.face_landmarks[0]], np.float32)
        bs = np.zeros(len(BLENDSHAPE_NAMES), np.float32)
        if res.face_blendshapes:
            for c in res.face_blendshapes[0]:
                bs[c.index] = c.score
        mat = (
            np.asarray(res.facial_transformation_matrixes[0], np.float32)
            if res.facial_transformation_matrixes
            else np.eye(4, dtype=np.float32)
        )
        h, w = crop_rgb.shape[:2]
        return LandmarkResult(lms, bs, mat, (int(w), int(h)))

    def close(self) -> None:
        """Release the MediaPipe graph."""
        self._task.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
