"""Emotion models: a model is a folder with ``model.onnx`` and ``card.json``, run with onnxruntime.

The interface every model implements (:class:`EmotionModel`), ONNX model folders (:class:`OnnxModel`), model cards,
test-time augmentation. The ONNX file's SHA-256 must match the card, so a corrupted or swapped file is refused.
:func:`ferkit.models.base.loading.load_model` finds models by name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferkit.errors import InputError, ModelError

if TYPE_CHECKING:
    from ferkit.models.calibration import Calibration


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise ModelError(f"{path}: cannot read model file ({e.strerror})") from None
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
        """Read and check ``card.json``: every key typed and in range (``ModelError`` naming file and key)."""
        from ferkit.models import schema as s

        data = s.read_json_object(path, "model card")
        missing = [k for k in ("name", "classes", "input_size", "channels", "mean", "std", "sha256") if k not in data]
        if missing:
            raise ModelError(f"model card {path} lacks the key {missing[0]!r}")
        channels = data["channels"]
        if channels not in ("gray", "rgb"):
            raise ModelError(f"{path}: channels must be 'gray' or 'rgb', got {channels!r}"[:300])
        onnx_file = data.get("onnx_file", "model.onnx")
        s.inside(Path(path).parent, onnx_file, "onnx_file", path)
        known = {
            "name": s.text(data["name"], "name", path),
            "classes": s.class_list(data["classes"], "classes", path),
            "input_size": s.number(data["input_size"], "input_size", path, 8, MAX_INPUT_SIZE, integer=True),
            "channels": channels,
            "mean": s.number(data["mean"], "mean", path, -MAX_NORM, MAX_NORM),
            "std": s.number(data["std"], "std", path, MIN_STD, MAX_NORM),
            "sha256": s.sha256_hex(data["sha256"], "sha256", path),
        }
        extra = {k: v for k, v in data.items() if k not in known and k != "onnx_file"}
        return cls(**known, onnx_file=onnx_file, extra=extra)


#: Bounds of what a card or spec may say: crops larger than this are no face crops; pixels are scaled to [0, 1], so
#: a std below MIN_STD (or a mean / std beyond MAX_NORM) only makes infinities.
MAX_INPUT_SIZE = 1024
MIN_STD, MAX_NORM = 1e-3, 1e3
#: The weights file that makes a model folder an AU emotion model (:mod:`ferkit.models.au_emotion`) instead of ONNX.
AU_WEIGHTS_FILE = "au_emotion.json"
#: Largest weights file ferkit hashes and loads (a protobuf ONNX file cannot exceed 2 GiB).
MAX_ONNX_BYTES = 2 << 30


def check_weights_file(path: Path, where: object) -> None:
    """A regular file of at most :data:`MAX_ONNX_BYTES`, checked before it is hashed (``/dev/zero``, a FIFO or a
    sparse 64 GiB file would otherwise be read without end)."""
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise ModelError(f"{where}: model file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{where}: model file {path} is not a regular file")
    if st.st_size > MAX_ONNX_BYTES:
        raise ModelError(f"{where}: model file {path} is {st.st_size >> 20} MB, more than an ONNX file can be")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: Test-time augmentation modes of :attr:`EmotionModel.tta` (see :func:`tta_crops`).
TTA_MODES = ("none", "flip", "flip_shift")


def tta_plan(mode: str, shift: int = 2) -> list[tuple[int, int, bool]]:
    """The views of a test-time augmentation mode as ``(dy, dx, mirrored)``: ``none`` (the image), ``flip`` (and
    its mirror) or ``flip_shift`` (also circular shifts by ``shift`` px right/left/down/up, each mirrored: ten
    views). The numpy path (:func:`tta_crops`) and the training teacher (``ferkit.training.distill``) both follow it."""
    if mode not in TTA_MODES:
        raise ModelError(f"unknown test-time augmentation {mode!r} (known: {', '.join(TTA_MODES)})")
    shifts = [(0, 0)] + ([(0, shift), (0, -shift), (shift, 0), (-shift, 0)] if mode == "flip_shift" else [])
    mirrors = (False,) if mode == "none" else (False, True)
    return [(dy, dx, m) for dy, dx in shifts for m in mirrors]


def tta_crops(crops: np.ndarray, mode: str = "flip", shift: int = 2) -> list[np.ndarray]:
    """Views of uint8 crops (N, S, S[, 3]) whose scores are averaged, as :func:`tta_plan` lists them."""
    views = []
    for dy, dx, mirrored in tta_plan(mode, shift):
        v = np.roll(crops, (dy, dx), (1, 2)) if dy or dx else crops
        views.append(np.ascontiguousarray(v[:, :, ::-1] if mirrored else v))
    return views


#: What ``--tta`` accepts: a mode of :data:`TTA_MODES`, or ``auto`` (see :func:`resolve_tta`).
TTA_CHOICES = (*TTA_MODES, "auto")


def resolve_tta(mode: str, video: bool = False) -> str:
    """The mode of :data:`TTA_MODES` that ``--tta mode`` means for a still image (or crop) or for video frames.

    ``auto`` is ``flip`` for stills and ``none`` for video: the mirror view costs a second model pass, cheap for
    photos and crops but a third of the frame rate of every-frame video analysis, where the timeline smoother
    averages over neighbouring frames instead. ``InputError`` for an unknown mode."""
    if mode not in TTA_CHOICES:
        raise InputError(f"--tta: {mode!r} is not one of {', '.join(TTA_CHOICES)}")
    if mode == "auto":
        return "none" if video else "flip"
    return mode


def set_tta(models: Iterable[EmotionModel], mode: str, video: bool = False) -> None:
    """Give every model the test-time augmentation ``mode`` (``auto`` resolved for ``video`` or stills by
    :func:`resolve_tta`); ``InputError`` for an unknown mode."""
    resolved = resolve_tta(mode, video)
    for m in models:
        m.tta = resolved


class EmotionModel:
    """Base of every expression classifier: uint8 crops (N, S, S) gray or (N, S, S, 3) RGB at ``input_size`` in,
    class scores out. Subclasses implement :meth:`forward_logits` (one pass); :meth:`raw_logits` averages it over
    the test-time views of :attr:`tta`; a :class:`~ferkit.models.calibration.Calibration` (per-class logit biases and a
    temperature), when attached, is applied by :meth:`logits` and :meth:`predict_proba`."""

    name: str
    classes: list[str]
    input_size: int
    channels: str
    sha256: str  # of the weights file: calibration files and reports refer to the model by it
    calibration: Calibration | None = None
    tta: str = "none"  # test-time augmentation (TTA_MODES): more accurate, 2× (flip) or 10× (flip_shift) compute

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Uncalibrated class scores of one forward pass, shape (N, classes)."""
        raise NotImplementedError

    def raw_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Uncalibrated class scores, averaged over the test-time views when :attr:`tta` is set."""
        if self.tta == "none":
            return self.forward_logits(crops, batch_size)
        return np.mean([self.forward_logits(v, batch_size) for v in tta_crops(crops, self.tta)], axis=0)

    def logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class scores with the calibration (if any) applied, shape (N, classes)."""
        z = self.raw_logits(crops, batch_size)
        return self.calibration.apply(z) if self.calibration is not None else z

    def predict_proba(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, shape (N, classes)."""
        return softmax(self.logits(crops, batch_size))

    def calibrate_with(self, calibration: Calibration | None) -> None:
        """Attach (or with ``None`` remove) a calibration; refused if it was fitted for other weights."""
        if calibration is not None:
            calibration.check(self.sha256, self.classes)
        self.calibration = calibration


def open_session(onnx_path: Path, threads: int = 0):  # -> onnxruntime.InferenceSession
    """An onnxruntime CPU session with ``threads`` intra-op threads (0: all cores); ``ModelError`` if unloadable."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelError(f"{onnx_path}: not a loadable ONNX model ({e})") from e


class OnnxModel(EmotionModel):
    """A model folder (``model.onnx`` + ``card.json``, optional ``calibration.json``) run with onnxruntime."""

    def __init__(self, folder: Path, threads: int = 0) -> None:
        self.folder = Path(folder)
        self.card = ModelCard.load(self.folder / "card.json")
        self.name, self.classes, self.sha256 = self.card.name, self.card.classes, self.card.sha256
        self.input_size, self.channels = self.card.input_size, self.card.channels
        onnx_path = self.folder / self.card.onnx_file
        if not onnx_path.is_file():
            raise ModelError(f"model file missing: {onnx_path}")
        check_weights_file(onnx_path, self.folder / "card.json")
        digest = sha256_file(onnx_path)
        if digest != self.card.sha256:
            raise ModelError(
                f"SHA-256 mismatch for {onnx_path}: card says {self.card.sha256[:12]}…, file is {digest[:12]}… "
                "(corrupted or replaced model; refusing to load)"
            )
        self.session = open_session(onnx_path, threads)
        inp = self.session.get_inputs()[0]
        self._input = inp.name
        want = [1 if self.card.channels == "gray" else 3, self.card.input_size, self.card.input_size]
        if len(inp.shape) != 4 or [d if isinstance(d, int) else None for d in inp.shape[1:]] not in (want,):
            raise ModelError(f"{onnx_path}: input shape {inp.shape} does not match the card (N, {want})")
        out = self.session.get_outputs()[0].shape
        if out and isinstance(out[-1], int) and out[-1] != len(self.classes):
            card = self.folder / "card.json"
            raise ModelError(f"{card}: lists {len(self.classes)} classes, the network has {out[-1]} outputs")

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        x = crops.astype(np.float32) / 255.0
        x = (x - self.card.mean) / self.card.std
        return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)

    def embeddings(self, crops: np.ndarray) -> np.ndarray:
        """The network's pooled ``embedding`` output (one pass, no test-time views), shape (N, D)."""
        return self.session.run(["embedding"], {self._input: self._prepare(crops)})[0]

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = [
            self.session.run(None, {self._input: self._prepare(crops[i : i + batch_size])})[0]
            for i in range(0, len(crops), batch_size)
        ]
        return np.concatenate(out)
