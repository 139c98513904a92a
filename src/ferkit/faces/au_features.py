"""Action-unit features from one MediaPipe fit: the 52 blendshapes plus pose- and size-normalised mesh geometry.

Geometry is measured in a canonical frontal frame: landmarks are made isotropic (x·W, y·H, z·W), flipped to the
canonical model's axes (x towards the subject's left, y up, z towards the camera), de-rotated with the rotation part
of the facial transformation matrix, and divided by the inter-ocular distance (outer eye corners, 3-D). Distances are
vertical (y) unless the name says ``_x`` (lateral, positive = away from the midline), ``_z`` (towards the camera) or
``_d`` (3-D distance).

Bilateral features come in ``_L``/``_R`` pairs (the subject's left/right) and blendshapes in ``Left``/``Right`` pairs,
so mirroring a face is the index permutation :data:`MIRROR_INDEX` (validated on flipped images in ``validate.py``).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ferkit.faces.landmarker import BLENDSHAPE_NAMES

# Mirror partners (subject's right → left) of the mesh points used below, from the canonical face model.
_MIRROR: dict[int, int] = {
    33: 263, 133: 362, 159: 386, 158: 385, 160: 387, 145: 374, 144: 373, 153: 380, 468: 473, 70: 300, 105: 334,
    107: 336, 46: 276, 52: 282, 55: 285, 61: 291, 37: 267, 129: 358, 98: 327, 48: 278, 50: 280, 101: 330, 118: 347,
    119: 348, 230: 450, 205: 425, 206: 426, 216: 436, 57: 287, 40: 270, 91: 321, 202: 422, 212: 432, 84: 314,
    82: 312, 87: 317,
}  # fmt: skip
_NOSE_BRIDGE = (168, 6, 197, 195)
_EYE_CORNERS = (33, 133, 263, 362)
_NOSE_TIP = 1

# Bilateral geometry, written for the subject's RIGHT side: (name, kind, a, b). a/b are mesh indices, tuples (mean of
# points), "eye" (the eye-corner midpoint of that side) or "mid" (the nose-bridge midline, only for "x").
_Pt = int | tuple[int, ...] | str
_SIDE_DEFS: tuple[tuple[str, str, _Pt, _Pt], ...] = (
    ("brow_inner_h", "y", (107, 55), "eye"),  # AU1 up, AU4 down
    ("brow_mid_h", "y", (105, 52), "eye"),
    ("brow_outer_h", "y", (70, 46), "eye"),  # AU2
    ("brow_inner_x", "x", (107, 55), "mid"),  # AU4 pulls the brows together
    ("brow_lid", "y", (105, 52), 159),  # brow to upper lid
    ("eye_open", "y", (159, 158, 160), (145, 153, 144)),  # AU5 up, AU7/AU43 down
    ("upper_lid_h", "y", 159, "eye"),  # AU5
    ("lower_lid_h", "y", 145, "eye"),  # AU6/AU7 raise the lower lid
    ("lid_iris", "y", 159, 468),  # sclera above the iris (AU5)
    ("eye_width_x", "x", 33, 133),
    ("infraorb_h", "y", 230, "eye"),  # infra-orbital furrow (AU6/AU7)
    ("cheek_h", "y", (118, 119, 101), "eye"),  # AU6 cheek raise
    ("cheek_low_h", "y", (50, 205), _NOSE_TIP),
    ("cheek_z", "z", (50, 118, 101), _NOSE_TIP),
    ("alar_lip", "y", 98, 37),  # nose wing to upper lip (AU9/AU10)
    ("alar_h", "y", (98, 129), "eye"),  # nose wing raise (AU9)
    ("nose_wide_x", "x", (129, 48), "mid"),
    ("nasolabial_d", "d", 98, 61),  # AU12/AU9/AU10 shorten it
    ("nasolab_fold_h", "y", (206, 216), _NOSE_TIP),
    ("corner_mouth_h", "y", 61, (13, 14)),  # AU12 up, AU15 down
    ("corner_nose_h", "y", 61, _NOSE_TIP),
    ("corner_x", "x", 61, "mid"),  # AU20/AU12 stretch, AU18/AU22/AU23 narrow
    ("corner_z", "z", 61, _NOSE_TIP),  # AU14 pulls the corner back
    ("corner_cheek_d", "d", 61, 50),
    ("upper_lip_side_h", "y", 37, 82),  # lip thickness, one side
    ("lower_lip_side_h", "y", 87, 84),
    ("below_corner_h", "y", (57, 212, 202), _NOSE_TIP),  # AU15 depressor region
)
# Midline geometry: (name, kind, a, b).
_MID_DEFS: tuple[tuple[str, str, _Pt, _Pt], ...] = (
    ("lip_gap", "y", 13, 14),  # AU25
    ("mouth_h", "y", 0, 17),
    ("upper_lip_thick", "y", 0, 13),  # AU23/AU24/AU28 thin the lips
    ("lower_lip_thick", "y", 14, 17),
    ("philtrum", "y", 2, 0),  # AU10 shortens
    ("lip_chin", "y", 17, 152),  # AU17
    ("sulcus_chin", "y", 18, 152),
    ("jaw_drop", "y", _NOSE_TIP, 152),  # AU26/AU27
    ("chin_z", "z", (152, 199, 175), _NOSE_TIP),
    ("sulcus_z", "z", 18, (152, 199)),  # chin boss pushed up (AU17)
    ("upper_lip_z", "z", 0, 2),  # protrusion (AU18/AU22)
    ("lower_lip_z", "z", 17, _NOSE_TIP),
    ("nose_base_h", "y", 2, "eyes"),  # AU9 lifts the nose base
    ("glabella_h", "y", 9, "eyes"),  # AU4 lowers the glabella
)

GEOMETRY_NAMES: tuple[str, ...] = tuple(
    [f"{n}_{s}" for n, *_ in _SIDE_DEFS for s in ("L", "R")] + [n for n, *_ in _MID_DEFS]
)
FEATURE_NAMES: tuple[str, ...] = tuple(f"bs_{n}" for n in BLENDSHAPE_NAMES) + GEOMETRY_NAMES
N_FEATURES = len(FEATURE_NAMES)


def _mirror_name(name: str) -> str:
    if name.endswith("_L"):
        return name[:-2] + "_R"
    if name.endswith("_R"):
        return name[:-2] + "_L"
    if name.endswith("Left"):
        return name[:-4] + "Right"
    if name.endswith("Right"):
        return name[:-5] + "Left"
    return name


MIRROR_INDEX: np.ndarray = np.array([FEATURE_NAMES.index(_mirror_name(n)) for n in FEATURE_NAMES], np.int64)
"""``features(mirrored_face) ≈ features(face)[MIRROR_INDEX]`` (swaps every Left/Right and _L/_R pair)."""


class _Fit(Protocol):
    landmarks: np.ndarray
    blendshapes: np.ndarray
    matrix: np.ndarray
    image_size: tuple[int, int]


def canonical_landmarks(landmarks: np.ndarray, matrix: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(478, 3) landmarks in the de-rotated canonical frame (x: subject's left, y: up, z: towards camera), IOD = 1."""
    w, h = image_size
    p = landmarks.astype(np.float64) * np.array([w, -h, -w], np.float64)
    p = (p - p[list(_EYE_CORNERS + _NOSE_BRIDGE)].mean(0)) @ np.asarray(matrix, np.float64)[:3, :3]
    iod = float(np.linalg.norm(p[263] - p[33]))
    return p / max(iod, 1e-9)


def _mirror_pt(a: _Pt) -> _Pt:
    if isinstance(a, str):
        return a
    if isinstance(a, tuple):
        return tuple(_MIRROR.get(i, i) for i in a)
    return _MIRROR.get(a, a)


def _point(p: np.ndarray, a: _Pt, side: str) -> np.ndarray:
    if a == "eye":
        return p[[33, 133]].mean(0) if side == "R" else p[[263, 362]].mean(0)
    if a == "eyes":
        return p[list(_EYE_CORNERS)].mean(0)
    if a == "mid":
        return p[list(_NOSE_BRIDGE)].mean(0)
    if isinstance(a, tuple):
        return p[list(a)].mean(0)
    return p[int(a)]


def _measure(p: np.ndarray, kind: str, a: _Pt, b: _Pt, side: str) -> float:
    pa, pb = _point(p, a, side), _point(p, b, side)
    if kind == "y":
        return float(pa[1] - pb[1])
    if kind == "z":
        return float(pa[2] - pb[2])
    if kind == "x":  # lateral, positive away from the midline (the right side lies at negative x)
        dx = float(pa[0] - pb[0])
        return -dx if side == "R" else dx
    return float(np.linalg.norm(pa - pb))


def geometry(p: np.ndarray) -> np.ndarray:
    """Geometry features (:data:`GEOMETRY_NAMES` order) from canonical landmarks (see :func:`canonical_landmarks`)."""
    out: list[float] = []
    for _, kind, a, b in _SIDE_DEFS:
        out.append(_measure(p, kind, _mirror_pt(a), _mirror_pt(b), "L"))
        out.append(_measure(p, kind, a, b, "R"))
    out.extend(_measure(p, kind, a, b, "M") for _, kind, a, b in _MID_DEFS)
    return np.asarray(out, np.float32)


def features(result: _Fit) -> np.ndarray:
    """The (N_FEATURES,) float32 feature vector of one fit: blendshapes, then geometry (:data:`FEATURE_NAMES`)."""
    p = canonical_landmarks(result.landmarks, result.matrix, result.image_size)
    return np.concatenate([np.asarray(result.blendshapes, np.float32), geometry(p)])


def features_from_arrays(
    landmarks: np.ndarray, blendshapes: np.ndarray, matrices: np.ndarray, image_size: tuple[int, int]
) -> np.ndarray:
    """Batch version of :func:`features` for cached arrays: (N, 478, 3), (N, 52), (N, 4, 4) → (N, N_FEATURES)."""
    rows = [
        np.concatenate([bs.astype(np.float32), geometry(canonical_landmarks(lm, m, image_size))])
        for lm, bs, m in zip(landmarks, blendshapes, matrices, strict=True)
    ]
    return np.stack(rows) if rows else np.zeros((0, N_FEATURES), np.float32)
