"""One ``speech_action`` composite: the upper face of an emotional face image over the lower face of a neutral
speaking frame, aligned by the face mesh and Poisson-blended (OpenCV ``seamlessClone``) at a seam below the eyes.

Both faces are fitted with MediaPipe's landmarker (:mod:`ferkit.faces.landmarker`). The speaker's face is moved onto
the emotional face by a similarity transform estimated from points the mouth does not move (eye corners, nose
bridge, cheek edges), so size and pose match; the lower face (cheeks, nose tip, mouth, jaw and chin, below the seam)
of both faces is replaced, so a longer or shorter jaw never leaves a second chin. Poisson blending takes the
speaker's gradients and the emotional face's boundary, which matches tone; a gray upper face gets a gray mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ferkit.faces.aus import pose_angles
from ferkit.faces.landmarker import FaceLandmarker, prepare_crop

#: Mesh points the mouth does not move: eye corners, nose bridge, cheek edges at eye level.
STABLE = (33, 133, 362, 263, 168, 6, 197, 234, 454, 127, 356)
#: The lower face oval, cheek edge to cheek edge through the chin (MediaPipe face-mesh indices).
LOWER_OVAL = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
#: The seam, from one cheek edge to the other below the eyes (under-eye and nose-wing points).
SEAM = (454, 447, 345, 346, 347, 348, 349, 329, 371, 142, 100, 120, 119, 118, 117, 116, 227, 234)
PAD, SIZE = 0.25, 192  # the landmarker's view of an image: padded by a quarter per side, 192 px


@dataclass(frozen=True)
class Fitted:
    """A face image as the compositor needs it: the padded RGB view, the mesh in its pixels (478, 2), the head pose
    (pitch, yaw, roll) in degrees, and the affine that maps the original image into the view."""

    view: np.ndarray
    points: np.ndarray
    pose: tuple[float, float, float]
    to_view: np.ndarray
    shape: tuple[int, int]  # (height, width) of the original image
    gray: bool


def is_gray(image: np.ndarray) -> bool:
    """Whether an image is gray: one channel, or three equal ones (a gray JPEG read as RGB)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def fit_face(landmarker: FaceLandmarker, image: np.ndarray, pad: float = PAD) -> Fitted | None:
    """Fit a face image (gray or RGB uint8, a face crop; ``pad``: the border added for the landmarker, a share of
    its side); None when the landmarker finds no face."""
    gray = is_gray(image)
    view, m = prepare_crop(image, pad, SIZE)
    res = landmarker.fit(view)
    if res is None:
        return None
    pts = res.landmarks[:, :2].astype(np.float64) * np.array(res.image_size, np.float64)
    return Fitted(view, pts, pose_angles(res.matrix), m, image.shape[:2], gray)


def _polygon(points: np.ndarray) -> np.ndarray:
    return np.round(np.concatenate([points[list(LOWER_OVAL)], points[list(SEAM)]])).astype(np.int32)


def composite(upper: Fitted, speaker: Fitted, feather: int = 5) -> np.ndarray | None:
    """The upper face of ``upper`` over the lower face of ``speaker``, framed as ``upper``'s original image (gray if
    it was gray); None when the faces cannot be aligned."""
    m, _ = cv2.estimateAffinePartial2D(speaker.points[list(STABLE)], upper.points[list(STABLE)], method=cv2.LMEDS)
    if m is None:
        return None
    src = cv2.warpAffine(speaker.view, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved = cv2.transform(speaker.points[None].astype(np.float64), m)[0]
    dst = upper.view
    if upper.gray:
        src = cv2.cvtColor(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    for pts in (moved, upper.points):  # both lower faces: the speaker's jaw and the emotional face's own chin
        cv2.fillPoly(mask, [cv2.convexHull(_polygon(pts))], 255)
    mask[:2], mask[-2:], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0  # seamlessClone needs a margin
    if feather:
        mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=feather // 2)
    ys, xs = np.nonzero(mask)
    if len(xs) < 50:
        return None
    center = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
    try:
        out = cv2.seamlessClone(src, dst, mask, center, cv2.NORMAL_CLONE)
    except cv2.error:
        return None
    (sx, _, x0), (_, sy, y0) = upper.to_view
    h, w = upper.shape
    region = out[round(y0) : round(y0 + h * sy), round(x0) : round(x0 + w * sx)]
    back = cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(back, cv2.COLOR_RGB2GRAY) if upper.gray else back
