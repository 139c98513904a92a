"""YuNet (libfacedetection) run with onnxruntime: box, score and five landmarks per face.

The ONNX file (YuNet-n, dynamic input size) ships in ``ferkit/assets/detectors/`` (MIT, notice beside it) and is checked
against a pinned SHA-256 each time it is loaded (the landmarker's :func:`~ferkit.faces.landmarker.load_verified`), so
an altered file is refused with one line naming the file and both hashes. onnxruntime runs it about twice as fast as
``cv2.FaceDetectorYN`` here (which also cannot load the dynamic-size files; ``benchmarks/detectors.py backend``).
:func:`input_side` picks the network input's long side per frame from the frame's own size.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import ModelError
from ferkit.faces import still_rescue
from ferkit.faces.detectors import Detector, Face, detect_tiled, drop_contained, register_detector, suppress

YUNET_FILE = Path(__file__).parents[1] / "assets" / "detectors" / "face_detection_yunet_n_dynamic.onnx"
YUNET_SHA256 = "104ee26c71d5c270ce79a6b3dced91c91013260d29a6bf18f9296c5b8c4c2b12"

#: Score threshold measured on the composed crowd clip and no-face footage (``benchmarks/crowd.py``).
MIN_SCORE = 0.6
#: A photo in which no face reaches ``min_score`` keeps its best face above this (:meth:`YuNet.detect_still`).
STILL_FLOOR = 0.3
#: The passes that must agree on a face in a photo where nothing else was found (``faces/still_rescue.py``).
RESCUE_VOTERS = ("upscaled", "clahe", "mirrored", "blazeface")
#: Long side of the network input: frames are shrunk to at most ``clip(long / 2, 640, 960)``; ``small_faces`` lets
#: frames up to 1920 px through at their own size.
MIN_SIDE, MAX_SIDE, SMALL_FACES_SIDE = 640, 960, 1920
_STRIDES = (8, 16, 32)


def input_side(long_side: int, small_faces: bool = False) -> int:
    """The network input's long side for a frame whose long side is ``long_side`` (never an upscale)."""
    if small_faces:
        return min(long_side, SMALL_FACES_SIDE)
    return min(long_side, max(MIN_SIDE, min(MAX_SIDE, long_side // 2)))


@register_detector("yunet")
class YuNet(Detector):
    """YuNet-n: box, score, eye centres, nose tip, mouth corners (the ``mouth`` point is their midpoint).

    ``min_face`` drops faces whose box is narrower than that many frame pixels; ``small_faces`` runs large frames at
    up to 1920 px instead of 960 (about 4× the cost on 1080p; faces down to ~12 px). ``max_side`` fixes the input's
    long side instead of :func:`input_side`. ``rescue``: extra passes for photos with no face (:meth:`detect_still`).
    ``threads``: onnxruntime intra-op threads (0: all cores); one by
    default, as the models' workers use the other cores and idle pool threads spin on a shared machine
    (``benchmarks/detectors.py backend``: on a busy 2-core machine one thread was 2–3× faster than two; on a quiet
    one two were 1.6× faster).
    """

    use_when = "default: any footage (film, crowds, turned faces down to ~20 px in HD)"

    def __init__(
        self,
        min_score: float = MIN_SCORE,
        small_faces: bool = False,
        min_face: float = 0.0,
        max_side: int | None = None,
        nms: float = 0.3,
        threads: int = 1,
        rescue: bool = True,
        model: str | os.PathLike[str] = YUNET_FILE,
        sha256: str = YUNET_SHA256,
    ) -> None:
        import onnxruntime as ort

        from ferkit.faces.landmarker import load_verified  # lazy: that module starts MediaPipe's task API

        self.min_score, self.small_faces, self.min_face, self.max_side, self.nms = (
            min_score, small_faces, min_face, max_side, nms
        )  # fmt: skip
        self.rescue, self.rescue_voters = rescue, RESCUE_VOTERS
        self.rescue_blazeface: Detector | None = None  # made by the rescue's BlazeFace vote on first use
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.log_severity_level = threads, 3
        try:
            self._session = ort.InferenceSession(load_verified(model, sha256), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a file that is not a loadable model
            raise ModelError(f"{os.fspath(model)}: not a loadable ONNX model ({e})") from None
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def detect_still(self, rgb: np.ndarray) -> list[Face]:
        """Photos: the tiled pass plus one on the image inside a black border a quarter of its long side wide (YuNet
        misses many faces that fill the whole picture, e.g. face crops). A photo with no face above ``min_score``
        keeps its best face above ``STILL_FLOOR`` (``benchmarks/alignment_choice.py``, ``detectors.py sfew``); one
        with none at all gets the passes of :func:`~ferkit.faces.still_rescue.rescue` (brightened, then two
        enhanced passes that agree; ``rescue_voters``, empty to skip the agreement step, ``rescue=False`` to skip
        both)."""
        s = min(1.0, SMALL_FACES_SIDE / max(rgb.shape[:2]))  # shrink before framing: a huge photo is not copied bigger
        floor = min(self.min_score, STILL_FLOOR)
        faces = still_rescue.framed(self, rgb, floor, scale=s)
        strict = self.min_score
        self.min_score = floor
        try:
            faces = drop_contained(suppress(faces + detect_tiled(self, rgb)))
        finally:
            self.min_score = strict
        if not faces and self.rescue:
            return still_rescue.rescue(self, rgb, floor, self.rescue_voters)
        return [f for f in faces if f.score >= strict] or faces[:1]

    def close(self) -> None:
        bf = getattr(self, "rescue_blazeface", None)
        if bf is not None:
            bf.close()
            self.rescue_blazeface = None

    def _grid(self, ph: int, pw: int) -> list[np.ndarray]:
        """Per stride, the (N, 2) cell origins (col, row) in the network's output order, cached per input size."""
        if (ph, pw) not in self._grids:
            self._grids[(ph, pw)] = [
                np.stack(np.meshgrid(np.arange(pw // s), np.arange(ph // s)), -1).reshape(-1, 2).astype(np.float32)
                for s in _STRIDES
            ]
        return self._grids[(ph, pw)]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        side = self.max_side or input_side(max(h, w), self.small_faces)
        s = min(1.0, side / max(h, w))
        iw, ih = max(1, round(w * s)), max(1, round(h * s))
        img = rgb if s == 1.0 else cv2.resize(rgb, (iw, ih), interpolation=cv2.INTER_AREA)
        ph, pw = -(-ih // 32) * 32, -(-iw // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :ih, :iw] = (img[..., None] if img.ndim == 2 else img[..., ::-1]).transpose(2, 0, 1)  # BGR
        names = [o.name for o in self._session.get_outputs()]
        out = dict(zip(names, self._session.run(None, {"input": blob}), strict=True))
        rows = []
        for stride, grid in zip(_STRIDES, self._grid(ph, pw), strict=True):
            score = np.sqrt(np.clip(out[f"cls_{stride}"][0, :, 0], 0, 1) * np.clip(out[f"obj_{stride}"][0, :, 0], 0, 1))
            keep = np.flatnonzero(score >= self.min_score)
            if keep.size == 0:
                continue
            cell, bbox, kps = grid[keep], out[f"bbox_{stride}"][0, keep], out[f"kps_{stride}"][0, keep]
            wh = np.exp(bbox[:, 2:4]) * stride
            xy = (cell + bbox[:, :2]) * stride - wh / 2
            pts = (kps.reshape(-1, 5, 2) + cell[:, None]) * stride
            rows.append(np.hstack([xy, wh, pts.reshape(-1, 10), score[keep, None]]) / np.r_[[s] * 14, 1.0])
        if not rows:
            return []
        det = np.vstack(rows)
        kept = cv2.dnn.NMSBoxes(det[:, :4].tolist(), det[:, 14].tolist(), self.min_score, self.nms)
        faces = []
        for row in det[np.ravel(kept)].tolist():
            x, y, bw, bh = row[:4]
            if bw < self.min_face:
                continue
            p = row[4:14]
            kp = {
                "left_eye": (p[0], p[1]),
                "right_eye": (p[2], p[3]),
                "nose": (p[4], p[5]),
                "mouth": ((p[6] + p[8]) / 2, (p[7] + p[9]) / 2),
                "mouth_left": (p[6], p[7]),
                "mouth_right": (p[8], p[9]),
            }
            faces.append(Face((x, y, bw, bh), row[14], kp))
        return sorted(faces, key=lambda f: -f.score)


@register_detector("yunet_small")
class YuNetSmall(YuNet):
    """YuNet with ``small_faces`` on: frames up to 1920 px go in at their own size (faces down to ~12 px)."""

    use_when = "HD footage with faces under ~30 px (audiences, wide shots); about 4× the detection cost on 1080p"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(small_faces=True, **kwargs)  # type: ignore[arg-type]
