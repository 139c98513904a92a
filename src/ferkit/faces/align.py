"""Face alignment: a 5-point similarity transform onto a canonical template, or a plain crop resize."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from ferkit.faces.detectors import Face


def to_channels(image: np.ndarray, channels: str) -> np.ndarray:
    """Convert an RGB (H, W, 3) or gray (H, W) uint8 image to ``"gray"`` (H, W) or ``"rgb"`` (H, W, 3)."""
    if channels == "gray":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if channels == "rgb":
        return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    raise ValueError(f"unknown channels {channels!r} (expected 'gray' or 'rgb')")


def resize_crop(image: np.ndarray, size: int, channels: str = "gray") -> np.ndarray:
    """Bring an image that already is a face crop to ``size``×``size`` (area filter down, cubic up)."""
    image = to_channels(image, channels)
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interp)


#: Canonical template (fractions of the output size) for left eye, right eye, nose tip, mouth centre, in image
#: left/right terms. Derived by ``scripts/derive_template.py --detector yunet``: the median YuNet keypoints (the mouth
#: point is the corners' midpoint) of 3,000 FER2013 training crops (x symmetrised), so aligned photos are framed like
#: the crops the bundled model learnt from.
FER_TEMPLATE = np.array([[0.319, 0.384], [0.681, 0.384], [0.500, 0.589], [0.500, 0.741]])

#: The same derivation from BlazeFace keypoints (its mouth point sits lower than YuNet's corner midpoint): the
#: template before YuNet became the default detector, and the one BlazeFace and the mesh align onto
#: (``Detector.template``; docs/detectors.md).
FER_BLAZEFACE_TEMPLATE = np.array([[0.311, 0.389], [0.689, 0.389], [0.500, 0.597], [0.500, 0.773]])

#: A tighter, ArcFace-like framing (eyes further apart in the output), kept for the alignment comparison benchmark.
TIGHT_TEMPLATE = np.array([[0.342, 0.462], [0.658, 0.462], [0.500, 0.641], [0.500, 0.823]])

TEMPLATES = {"fer": FER_TEMPLATE, "fer_blazeface": FER_BLAZEFACE_TEMPLATE, "tight": TIGHT_TEMPLATE}

#: Detector box side over crop side, and box-centre drop below the crop centre (fractions of the crop side), for
#: BlazeFace boxes in FER2013 crops (``scripts/derive_template.py``).
BOX_FRACTION, BOX_CENTRE_DROP = 0.85, 0.068


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) mapping ``src`` points onto ``dst``.

    Returns the 2×3 matrix for ``cv2.warpAffine``. Closed form (Umeyama's, no reflection): with both point sets
    centred, ``scale·cos`` and ``scale·sin`` are the summed dot and cross products over the summed squared norm of
    ``src`` — the solution of the linear least-squares problem, a few times cheaper than ``np.linalg.lstsq`` (this
    runs once per face per video frame).
    """
    sp, dp = np.asarray(src, np.float64).tolist(), np.asarray(dst, np.float64).tolist()
    n = len(sp)  # a handful of points: plain floats beat numpy's per-call overhead here
    msx, msy = sum(x for x, _ in sp) / n, sum(y for _, y in sp) / n
    mdx, mdy = sum(x for x, _ in dp) / n, sum(y for _, y in dp) / n
    norm = dot = cross = 0.0
    for (x, y), (u, v) in zip(sp, dp, strict=True):
        x, y, u, v = x - msx, y - msy, u - mdx, v - mdy
        norm += x * x + y * y
        dot += x * u + y * v
        cross += x * v - y * u
    if norm == 0.0:  # all source points coincide: no rotation or scale can be fitted
        return np.array([[1.0, 0.0, mdx - msx], [0.0, 1.0, mdy - msy]])
    p, q = dot / norm, cross / norm
    return np.array([[p, -q, mdx - p * msx + q * msy], [q, p, mdy - q * msx - p * msy]])


def align_keypoints(
    image: np.ndarray, keypoints: np.ndarray, size: int = 64, template: str | np.ndarray = "fer"
) -> np.ndarray:
    """Warp ``image`` so the (4, 2) keypoints (eyes, nose, mouth) land on the template, output ``size``×``size``."""
    tpl = TEMPLATES[template] if isinstance(template, str) else np.asarray(template)
    m = similarity_matrix(keypoints, tpl * size)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def align_box(image: np.ndarray, box: tuple[float, float, float, float], size: int = 64) -> np.ndarray:
    """Fallback without keypoints: a square crop framed around the detector box the way FER2013 crops are.

    ``scripts/derive_template.py`` measured BlazeFace boxes in FER2013 crops: box side = 0.85 × crop side, box
    centre 0.068 crop sides below the crop centre.
    """
    x, y, w, h = box
    side = max(w, h) / BOX_FRACTION
    cx, cy = x + w / 2, y + h / 2 - BOX_CENTRE_DROP * side
    s = size / side
    m = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def align_face(image: np.ndarray, face: Face, size: int = 64, template: str = "fer") -> tuple[np.ndarray, str]:
    """Aligned crop of one detected face and how it was made: ``"keypoints"`` or ``"box"`` (no keypoints)."""
    if face.has_keypoints:
        return align_keypoints(image, face.keypoint_array(), size, template), "keypoints"
    return align_box(image, face.box, size), "box"
