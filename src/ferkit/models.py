"""Emotion models: a model is a folder with ``model.onnx`` and ``card.json``, run with onnxruntime.

``load_model("ferkit")`` loads the bundled model; any folder path works too. The ONNX file's SHA-256 must match the
card, so a corrupted or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.errors import ModelError

BUNDLED_DIR = Path(__file__).parent / "models"

#: Named models: name -> folder. Backends of other kinds (e.g. the ``fer`` package) register a loader instead.
MODEL_FOLDERS: dict[str, Path] = {"ferkit": BUNDLED_DIR / "ferkit"}
MODEL_LOADERS: dict[str, Callable[[], EmotionModel]] = {}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelCard:
    """The machine-readable part of ``card.json`` that inference needs (the rest is kept in ``extra``)."""

    name: str
    classes: list[str]
    input_size: int
    channels: str
    mean: float
    std: float
    sha256: str
    onnx_file: str = "model.onnx"
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(Path(path).read_text())
            known = {k: data[k] for k in ("name", "classes", "input_size", "channels", "mean", "std", "sha256")}
        except (OSError, ValueError, TypeError) as e:
            raise ModelError(f"cannot read model card {path}: {e}") from e
        except KeyError as e:
            raise ModelError(f"model card {path} lacks the key {e.args[0]!r}") from e
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**known, onnx_file=data.get("onnx_file", "model.onnx"), extra=extra)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class EmotionModel:
    """An ONNX expression classifier; input uint8 crops (N, S, S) gray or (N, S, S, 3) RGB at the card's size."""

    def __init__(self, folder: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        self.card = ModelCard.load(self.folder / "card.json")
        onnx_path = self.folder / self.card.onnx_file
        if not onnx_path.is_file():
            raise ModelError(f"model file missing: {onnx_path}")
        digest = sha256_file(onnx_path)
        if digest != self.card.sha256:
            raise ModelError(
                f"SHA-256 mismatch for {onnx_path}: card says {self.card.sha256[:12]}…, file is {digest[:12]}… "
                "(corrupted or replaced model; refusing to load)"
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"{onnx_path}: not a loadable ONNX model ({e})") from e
        inp = self.session.get_inputs()[0]
        self._input = inp.name
        want = [1 if self.card.channels == "gray" else 3, self.card.input_size, self.card.input_size]
        if len(inp.shape) != 4 or [d if isinstance(d, int) else None for d in inp.shape[1:]] not in (want,):
            raise ModelError(f"{onnx_path}: input shape {inp.shape} does not match the card (N, {want})")

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    @property
    def input_size(self) -> int:
        return self.card.input_size

    @property
    def channels(self) -> str:
        return self.card.channels

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        x = crops.astype(np.float32) / 255.0
        x = (x - self.card.mean) / self.card.std
        return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Raw class scores, shape (N, classes)."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = [
            self.session.run(None, {self._input: self._prepare(crops[i : i + batch_size])})[0]
            for i in range(0, len(crops), batch_size)
        ]
        return np.concatenate(out)

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, classes)."""
        return softmax(self.logits(crops, batch_size))


def load_model(name_or_path: str | Path = "ferkit", threads: int = 0) -> EmotionModel:
    """Load a registered model by name, or a model folder by path; ``threads`` = onnxruntime intra-op threads
    (0: all cores; analysis uses 1 because it runs the model beside decoding, see ``pipeline``)."""
    key = str(name_or_path)
    if key in MODEL_LOADERS:
        return MODEL_LOADERS[key]()
    folder = MODEL_FOLDERS.get(key, Path(key))
    if not folder.is_dir():
        known = ", ".join(sorted({*MODEL_FOLDERS, *MODEL_LOADERS}))
        raise ModelError(f"no model named or found at {key!r} (known names: {known}; or give a model folder)")
    return EmotionModel(folder, threads)
