"""Face detection behind a registry: YuNet (default, ``faces/yunet.py``), MediaPipe BlazeFace short and full range,
MediaPipe face mesh, OpenCV Haar cascade.

Every detector returns :class:`Face` objects in pixel coordinates of the RGB image it was given. Keypoints are named
from the image's point of view: ``left_eye`` is the eye on the image's left (the subject's right eye).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from ferkit.errors import InputError

KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth")


@dataclass
class Face:
    """One detected face: box ``(x, y, w, h)`` in pixels, detector score, and alignment keypoints (pixels)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def has_keypoints(self) -> bool:
        """True when all points that alignment uses are present."""
        return all(k in self.keypoints for k in KEYPOINT_NAMES)

    def keypoint_array(self) -> np.ndarray:
        """The alignment keypoints as a (4, 2) float array in ``KEYPOINT_NAMES`` order."""
        return np.array([self.keypoints[k] for k in KEYPOINT_NAMES], dtype=np.float64)

    def transformed(self, m: np.ndarray) -> Face:
        """This face moved by a 2×3 similarity transform (keypoints exactly, the box about its centre)."""
        x, y, w, h = self.box
        pts = np.array([*self.keypoints.values(), (x + w / 2, y + h / 2)], np.float64) @ m[:, :2].T + m[:, 2]
        kp = {k: (float(px), float(py)) for k, (px, py) in zip(self.keypoints, pts[:-1].tolist(), strict=True)}
        cx, cy = pts[-1]
        s = float(np.hypot(m[0, 0], m[1, 0]))
        return Face((cx - w * s / 2, cy - h * s / 2, w * s, h * s), self.score, kp)


class Detector:
    """Base class: ``detect(rgb)`` returns faces sorted by score, best first."""

    name = "base"
    gives_keypoints = True
    use_when = ""  # one line for ``ferkit models``: which footage this detector suits
    #: The alignment template (``faces.align.TEMPLATES``) derived from this detector's own keypoints: each detector
    #: puts its points a little differently (BlazeFace's mouth point sits lower than YuNet's corner midpoint).
    template = "fer"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        raise NotImplementedError

    def detect_still(self, rgb: np.ndarray) -> list[Face]:
        """Faces in a photo, where time matters less than finding every face: :func:`detect_tiled` by default, less
        the windows' partial views of a bigger face (:func:`drop_contained`)."""
        return drop_contained(detect_tiled(self, rgb))

    def close(self) -> None:
        """Release native resources (no-op by default)."""


DETECTORS: dict[str, type[Detector]] = {}


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator that registers a detector under ``name``."""

    def wrap(cls: type[Detector]) -> type[Detector]:
        cls.name = name
        DETECTORS[name] = cls
        return cls

    return wrap


def check_detector(name: str) -> None:
    """``InputError`` naming the known detectors unless ``name`` is registered."""
    if name not in DETECTORS:
        raise InputError(f"--detector: unknown detector {name!r} (known: {', '.join(DETECTORS)})")


def detector_template(name: str) -> str:
    """The alignment template that suits detector ``name``'s keypoints (:func:`check_detector` first)."""
    check_detector(name)
    return DETECTORS[name].template


def create_detector(name: str = "yunet", **kwargs: object) -> Detector:
    """Build a registered detector (:func:`check_detector` first)."""
    check_detector(name)
    return DETECTORS[name](**kwargs)


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence the TFLite/absl banner that MediaPipe's C++ code prints on stderr while a graph starts."""
    try:
        fd = os.dup(2)
    except OSError:  # no real stderr (embedded interpreter)
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


os.environ.setdefault("GLOG_minloglevel", "2")


class _MediaPipeBase(Detector):
    def __init__(self) -> None:
        self._graph = self._build()
        with quiet_native_stderr():  # the first run prints the XNNPACK banner
            self._graph.process(np.zeros((64, 64, 3), np.uint8))

    def _build(self):
        raise NotImplementedError

    def close(self) -> None:
        with quiet_native_stderr():  # tearing a graph down may log too (a glog warning on stderr)
            self._graph.close()


@register_detector("blazeface")
class BlazeFace(_MediaPipeBase):
    """MediaPipe BlazeFace: box, score, eye centres, nose tip, mouth centre. ``full_range`` for small, far faces."""

    use_when = "one near, frontal face (webcam, selfie video); fastest per call, misses small and turned faces"
    template = "fer_blazeface"

    def __init__(self, min_score: float = 0.5, full_range: bool = False) -> None:
        self.min_score, self.full_range = min_score, full_range
        super().__init__()

    def _build(self):
        import mediapipe as mp

        with quiet_native_stderr():
            return mp.solutions.face_detection.FaceDetection(
                model_selection=int(self.full_range), min_detection_confidence=self.min_score
            )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        result = self._graph.process(np.ascontiguousarray(rgb))
        faces = []
        for d in result.detections or []:
            rb = d.location_data.relative_bounding_box
            kp = d.location_data.relative_keypoints
            box = (rb.xmin * w, rb.ymin * h, rb.width * w, rb.height * h)
            pts = {name: (kp[i].x * w, kp[i].y * h) for i, name in enumerate(KEYPOINT_NAMES)}
            faces.append(Face(box, float(d.score[0]), pts))
        return sorted(faces, key=lambda f: -f.score)


@register_detector("blazeface_full")
class BlazeFaceFull(BlazeFace):
    """BlazeFace full-range model (faces up to ~5 m away, slower)."""

    use_when = "medium-distance faces in MediaPipe terms; misses most close-ups (SFEW: 689 of 860 no face)"

    def __init__(self, min_score: float = 0.5) -> None:
        super().__init__(min_score=min_score, full_range=True)


# Face-mesh landmark indices: eye contours (image-left eye first), nose tip, mouth corners.
_MESH_LEFT_EYE = (33, 133, 159, 145)
_MESH_RIGHT_EYE = (362, 263, 386, 374)
_MESH_NOSE, _MESH_MOUTH_CORNERS = 1, (61, 291)


@register_detector("mesh")
class FaceMesh(_MediaPipeBase):
    """MediaPipe 478-point face mesh; the box is the landmarks' extent, the score is 1 (the mesh gives none)."""

    use_when = "up to 4 large faces where mouth corners matter; slow, no score"
    template = "fer_blazeface"  # FER2013-as-photos: 0.619 against 0.598 on YuNet's (benchmarks/alignment_choice.py)

    def __init__(self, max_faces: int = 4, min_score: float = 0.5) -> None:
        self.max_faces, self.min_score = max_faces, min_score
        super().__init__()

    def _build(self):
        import mediapipe as mp

        with quiet_native_stderr():
            return mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=self.max_faces, min_detection_confidence=self.min_score
            )

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        result = self._graph.process(np.ascontiguousarray(rgb))
        faces = []
        for lm in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in lm.landmark])
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            mouth = pts[list(_MESH_MOUTH_CORNERS)]
            kp = {
                "left_eye": tuple(pts[list(_MESH_LEFT_EYE)].mean(0)),
                "right_eye": tuple(pts[list(_MESH_RIGHT_EYE)].mean(0)),
                "nose": tuple(pts[_MESH_NOSE]),
                "mouth": tuple(mouth.mean(0)),
                "mouth_left": tuple(mouth[0]),
                "mouth_right": tuple(mouth[1]),
            }
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), 1.0, {k: (float(x), float(y)) for k, (x, y) in kp.items()}))
        return faces


@register_detector("haar")
class HaarCascade(Detector):
    """OpenCV's frontal-face Haar cascade: boxes only (alignment falls back to a box crop)."""

    gives_keypoints = False
    use_when = "comparison only: frontal faces, boxes without keypoints (box framing)"

    def __init__(self, min_size: int = 24) -> None:
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade missing at {path} (OpenCV 5.x ships none; use 4.x)")
        self.min_size = min_size

    def detect(self, rgb: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size), outputRejectLevels=True
        )
        faces = [Face(tuple(float(v) for v in b), float(s)) for b, s in zip(boxes, np.ravel(weights), strict=False)]
        return sorted(faces, key=lambda f: -f.score)


def intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area shared by two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    inter = intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detect_tiled(detector: Detector, rgb: np.ndarray, nms_iou: float = 0.4) -> list[Face]:
    """Detect on the whole image and on overlapping square windows, merged by non-maximum suppression.

    BlazeFace sees a 128-px downscale of its input, so faces that are small in a big or wide image (group photos,
    side-by-side videos) are only found in a window.
    """
    h, w = rgb.shape[:2]
    faces = detector.detect(rgb)
    side = int(min(h, w) * (1.0 if max(h, w) > 1.5 * min(h, w) else 0.6))
    if side < 64:
        return faces
    step = max(1, int(side * 0.75))
    xs = sorted({*range(0, w - side + 1, step), w - side})
    ys = sorted({*range(0, h - side + 1, step), h - side})
    for y0 in ys:
        for x0 in xs:
            if (x0, y0, side) == (0, 0, max(h, w)):
                continue
            for f in detector.detect(rgb[y0 : y0 + side, x0 : x0 + side]):
                m = np.array([[1.0, 0, x0], [0, 1.0, y0]])
                faces.append(f.transformed(m))
    return suppress(faces, nms_iou)


def drop_contained(faces: list[Face], inside: float = 0.7, larger: float = 1.5) -> list[Face]:
    """Photos: drop a face whose box lies mostly (``inside`` of its area) within a box ``larger`` times its area: a
    window of the tiled pass that saw part of a face filling the photo (the eyes, the mouth and chin) as a face."""

    def area(f: Face) -> float:
        return max(0.0, f.box[2]) * max(0.0, f.box[3])

    def inside_of(f: Face, g: Face) -> bool:
        return area(g) >= larger * area(f) and intersection(f.box, g.box) >= inside * max(area(f), 1e-9)

    return [f for f in faces if not any(inside_of(f, g) for g in faces)]


def suppress(faces: list[Face], nms_iou: float = 0.4) -> list[Face]:
    """Non-maximum suppression: faces by score, best first, dropping any that overlaps a better one by ``nms_iou``."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(iou(f.box, k.box) < nms_iou for k in kept):
            kept.append(f)
    return kept
