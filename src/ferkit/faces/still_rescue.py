"""Extra passes for a photo in which YuNet's still passes found no face (``YuNet.detect_still``).

They run only on such photos, one after the other and only while nothing is found, so a photo with a face costs
nothing more. Measured on the SFEW train images YuNet missed, 271 SFEW faces made hard to find (darkened, defocused,
zoomed in, cut in half) and 1,580 face-free crops and frames (``benchmarks/still_rescue.py``, docs/detectors.md):

1. **brightened** (gamma 0.5): dark film frames; found 152 of 188 darkened faces and boxed none of the face-free
   photos;
2. **two passes agree**: a face found by two of the ``voters`` at overlapping places (IoU ≥ 0.3), each YuNet pass
   scoring ≥ ``floor``: ``upscaled`` (small photos brought up to 2×, at most to ``MIN_SIDE``), ``clahe`` (contrast
   equalised on the luminance), ``mirrored`` (the photo inside a mirrored rather than a black border), and
   BlazeFace's tiled pass. Any one of them alone boxes title letters, hands, dark sleeves, wood grain (7 to 91 of
   the 1,580 face-free photos; BlazeFace the most); two agreeing, 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from ferkit.faces.detectors import Detector, Face, create_detector, iou, suppress

#: Long side an upscaled pass brings a small photo up to at most (YuNet's smallest input side), and the long side
#: a larger photo is shrunk to before the passes (YuNet's ``small_faces`` side: what its framed still pass sees).
MIN_SIDE, MAX_SIDE = 640, 1920
GAMMA = 0.5
AGREE_IOU = 0.3


class _StillDetector(Protocol):
    min_score: float

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


def brighten(rgb: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """``rgb`` through a gamma curve (< 1 lifts the shadows)."""
    lut = np.clip(255 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return lut[rgb]


def equalise(rgb: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """CLAHE on the luminance (L of Lab, 4 × 4 tiles), colours kept."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clip, (4, 4)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def framed(
    det: _StillDetector,
    rgb: np.ndarray,
    floor: float,
    scale: float = 1.0,
    border: int = cv2.BORDER_CONSTANT,
    plain: bool = False,
) -> list[Face]:
    """Faces scoring ≥ ``floor`` in ``rgb`` resized by ``scale`` inside a border a quarter of its long side wide (and,
    with ``plain``, without it), in ``rgb``'s pixels, best first."""
    img = rgb
    if scale != 1.0:
        h, w = rgb.shape[:2]
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    pad = max(img.shape[:2]) // 4
    strict = det.min_score
    det.min_score = floor
    try:
        found = [(f, pad) for f in det.detect(cv2.copyMakeBorder(img, pad, pad, pad, pad, border))]
        if plain:
            found += [(f, 0) for f in det.detect(img)]
    finally:
        det.min_score = strict
    back = [np.array([[1 / scale, 0.0, -p / scale], [0.0, 1 / scale, -p / scale]]) for _, p in found]
    return suppress([f.transformed(m) for (f, _), m in zip(found, back, strict=True)])


def _blazeface(det: _StillDetector) -> Detector:
    """The BlazeFace that votes for ``det``, made on first use (and closed by ``det.close()``)."""
    bf = getattr(det, "rescue_blazeface", None)
    if bf is None:
        bf = det.rescue_blazeface = create_detector("blazeface")  # type: ignore[attr-defined]
    return bf


def voters(det: _StillDetector, floor: float) -> dict[str, Callable[[np.ndarray], list[Face]]]:
    """The passes that vote in step 2, by name."""

    def upscaled(rgb: np.ndarray) -> list[Face]:
        s = min(2.0, MIN_SIDE / max(rgb.shape[:2]))
        return framed(det, rgb, floor, scale=s, plain=True) if s > 1.05 else []

    return {
        "upscaled": upscaled,
        "clahe": lambda rgb: framed(det, equalise(rgb), floor, plain=True),
        "mirrored": lambda rgb: framed(det, rgb, floor, border=cv2.BORDER_REFLECT),
        "blazeface": lambda rgb: _blazeface(det).detect_still(rgb),
    }


def rescue(det: _StillDetector, rgb: np.ndarray, floor: float, names: tuple[str, ...]) -> list[Face]:
    """At most one face for a photo in which the usual passes found none (steps 1 and 2 above; ``names``: voters).
    A photo longer than ``MAX_SIDE`` is shrunk to it first (faces come back in its own pixels)."""
    s = min(1.0, MAX_SIDE / max(rgb.shape[:2]))
    if s < 1.0:
        size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
        back = np.array([[1 / s, 0.0, 0.0], [0.0, 1 / s, 0.0]])
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        return [f.transformed(back) for f in rescue(det, small, floor, names)]
    faces = framed(det, brighten(rgb), floor, plain=True)
    if faces:
        return faces[:1]
    passes = voters(det, floor)
    found = [(f, k) for k in names for f in passes[k](rgb)]
    for f, k in sorted(found, key=lambda fk: -fk[0].score):
        if any(k2 != k and iou(f.box, f2.box) >= AGREE_IOU for f2, k2 in found):
            return [f]
    return []
