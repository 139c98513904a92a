"""``ferkit-au``: emotion from action units, the way OpenFace users infer it — a face → MediaPipe's landmarker →
AU features and AU presence probabilities (:mod:`ferkit.faces.aus`) → a small classifier over them.

A folder of this kind holds ``card.json`` and ``au_emotion.json`` (:data:`WEIGHTS_FILE`: plain numbers, no pickle;
its SHA-256 is in the card and checked at every load). The crop it takes is an RGB face crop framed like the other
models' (``input_size``, aligned onto the FER template or resized from a ``--crops`` image); the landmarker sees it
padded by 25 % per side at 192 px, as ``--crops --aus`` does. A face the landmarker cannot fit gets the weights'
``fallback`` distribution (documented in the card), never an error. Test-time views (``--tta flip``/``flip_shift``)
are taken in feature space: the feature vector and its mirror permutation (``MIRROR_INDEX``), so the mirror view
costs no second landmarker fit and the shifts are not used (landmarks do not depend on a 2-px shift).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ferkit.errors import ModelError
from ferkit.faces.au_features import FEATURE_NAMES, MIRROR_INDEX
from ferkit.faces.aus import STILL_SIZE, AuModel, LandmarkerPool, still_crop
from ferkit.faces.landmarker import prepare_crop
from ferkit.models import schema as s
from ferkit.models.base import AU_WEIGHTS_FILE, MAX_INPUT_SIZE, EmotionModel, check_weights_file, sha256_file

#: The weights file of an AU emotion model folder; its presence tells :func:`~ferkit.models.loading.load_model` the
#: folder's kind.
WEIGHTS_FILE = AU_WEIGHTS_FILE
FORMAT = "ferkit-au-emotion/1"
#: Landmarker worker processes (MediaPipe holds the GIL; as ``ferkit analyze --aus``, which shares the same pool).
LANDMARKER_PROCESSES = 2
#: Classifier inputs: AU presence probabilities of the learned heads, and the landmarker features themselves.
INPUTS = ("aus", "features")
CARD_KEYS = ("name", "classes", "input_size", "channels", "sha256")


#: Second try for a crop the landmarker does not fit: a wider black border instead of replicated edges (replicated
#: edges smear a tight crop's border into streaks that hide the face from MediaPipe's detector on ~11 % of FER2013).
RETRY_PAD, RETRY_BORDER = 0.4, "constant"


def landmarker_input(crop: np.ndarray, retry: bool = False) -> np.ndarray:
    """The landmarker's view of one model crop (gray or RGB uint8), ``STILL_SIZE`` px RGB: padded as ``--crops --aus``
    does (:func:`~ferkit.faces.aus.still_crop`), or for the ``retry`` by ``RETRY_PAD`` in black."""
    if retry:
        return prepare_crop(crop, RETRY_PAD, STILL_SIZE, RETRY_BORDER)[0]
    return still_crop(crop)


def fit_features(pool: LandmarkerPool, crops: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarker features of model crops, (N, F) float64 rows (zeros where no fit), and per crop how it was fitted:
    0 not at all, 1 on the first try, 2 on the second (:data:`RETRY_PAD`), tried only for crops the first missed."""
    fits = pool.fit_many([landmarker_input(c) for c in crops], [None] * len(crops))
    again = [i for i, f in enumerate(fits) if f is None]
    for i, f in zip(
        again, pool.fit_many([landmarker_input(crops[i], True) for i in again], [None] * len(again)), strict=True
    ):
        fits[i] = f
    x = np.zeros((len(fits), len(FEATURE_NAMES)), np.float64)
    for i, f in enumerate(fits):
        if f is not None:
            x[i] = f.features
    how = np.array([f is not None for f in fits], np.int8)
    how[[i for i in again if fits[i] is not None]] = 2
    return x, how


def _matrix(value: Any, key: str, where: object, shape: tuple[int, ...]) -> np.ndarray:
    """A finite float array of ``shape`` (``-1``: any length) from plain JSON numbers."""
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: {key} must be numbers of shape {shape}") from None
    if a.ndim != len(shape) or any(w not in (-1, g) for w, g in zip(shape, a.shape, strict=True)):
        raise ModelError(f"{where}: {key} has shape {a.shape}, expected {shape}")
    if not np.isfinite(a).all():
        raise ModelError(f"{where}: {key} holds a non-finite number")
    return a


@dataclass(frozen=True)
class AuClassifier:
    """Standardised inputs → dense layers (ReLU between them; one layer = multinomial logistic regression) → class
    logits. ``inputs`` lists the input blocks in order (:data:`INPUTS`); ``fallback`` is the class distribution
    given to faces the landmarker cannot fit."""

    classes: tuple[str, ...]
    inputs: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (out, in), bias (out,))
    fallback: np.ndarray
    heads_sha256: str  # the AU heads whose probabilities it was trained on

    def design(self, x: np.ndarray, aus: AuModel) -> np.ndarray:
        """Input rows for feature rows ``x`` (N, F): the blocks of :attr:`inputs`, unstandardised."""
        blocks = {"aus": lambda: aus.presence(x), "features": lambda: np.atleast_2d(x)}
        return np.concatenate([blocks[k]() for k in self.inputs], axis=1)

    def logits(self, design: np.ndarray) -> np.ndarray:
        """Class scores (N, C) of input rows."""
        h = (design - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (the weights file)."""
        return {
            "format": FORMAT,
            "classes": list(self.classes),
            "inputs": list(self.inputs),
            "au_heads_sha256": self.heads_sha256,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
            "fallback": self.fallback.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: object, width: dict[str, int]) -> AuClassifier:
        """Check and build from :meth:`to_dict` output; ``width``: columns of each input block."""
        if d.get("format") != FORMAT:
            raise ModelError(f"{where}: format must be {FORMAT!r}, got {d.get('format')!r}"[:300])
        classes = s.class_list(d.get("classes"), "classes", where)
        inputs = d.get("inputs")
        if (
            not isinstance(inputs, list)
            or not inputs
            or any(k not in INPUTS for k in inputs)
            or len(set(inputs)) != len(inputs)
        ):
            raise ModelError(f"{where}: inputs must be distinct names out of {', '.join(INPUTS)}, got {inputs!r}"[:300])
        n = sum(width[k] for k in inputs)
        mean = _matrix(d.get("mean"), "mean", where, (n,))
        scale = _matrix(d.get("scale"), "scale", where, (n,))
        if (scale <= 0).any():
            raise ModelError(f"{where}: scale must be positive")
        raw = d.get("layers")
        if not isinstance(raw, list) or not 1 <= len(raw) <= 4 or not all(isinstance(r, dict) for r in raw):
            raise ModelError(f"{where}: layers must be a list of 1 to 4 {{weight, bias}} objects")
        layers, width_in = [], n
        for i, r in enumerate(raw):
            out = len(classes) if i == len(raw) - 1 else -1
            w = _matrix(r.get("weight"), f"layers[{i}].weight", where, (out, width_in))
            layers.append((w, _matrix(r.get("bias"), f"layers[{i}].bias", where, (w.shape[0],))))
            width_in = w.shape[0]
        fallback = _matrix(d.get("fallback"), "fallback", where, (len(classes),))
        if (fallback <= 0).any() or abs(fallback.sum() - 1) > 1e-6:
            raise ModelError(f"{where}: fallback must be positive probabilities summing to 1")
        heads = s.sha256_hex(d.get("au_heads_sha256"), "au_heads_sha256", where)
        return cls(tuple(classes), tuple(inputs), mean, scale, tuple(layers), fallback, heads)


class AuEmotionModel(EmotionModel):
    """An AU emotion model folder (``card.json`` + :data:`WEIGHTS_FILE`): see the module docstring."""

    def __init__(self, folder: Path, processes: int = LANDMARKER_PROCESSES) -> None:
        self.folder = Path(folder)
        card_path = self.folder / "card.json"
        card = s.read_json_object(card_path, "model card")
        missing = [k for k in CARD_KEYS if k not in card]
        if missing:
            raise ModelError(f"model card {card_path} lacks the key {missing[0]!r}")
        if card["channels"] != "rgb":
            raise ModelError(
                f"{card_path}: channels of an AU emotion model must be 'rgb', got {card['channels']!r}"[:300]
            )
        self.card: dict[str, Any] = card
        self.name = s.text(card["name"], "name", card_path)
        self.classes = s.class_list(card["classes"], "classes", card_path)
        self.input_size = int(s.number(card["input_size"], "input_size", card_path, 32, MAX_INPUT_SIZE, integer=True))
        self.channels = "rgb"
        self.sha256 = s.sha256_hex(card["sha256"], "sha256", card_path)
        weights = s.inside(self.folder, card.get("weights_file", WEIGHTS_FILE), "weights_file", card_path)
        check_weights_file(weights, card_path)
        digest = sha256_file(weights)
        if digest != self.sha256:
            raise ModelError(
                f"SHA-256 mismatch for {weights}: card says {self.sha256[:12]}…, file is {digest[:12]}… "
                "(corrupted or replaced model; refusing to load)"
            )
        self.aus = AuModel.load()
        width = {"aus": len(self.aus.learned_keys), "features": len(FEATURE_NAMES)}
        self.head = AuClassifier.from_dict(s.read_json_object(weights, "AU emotion weights"), weights, width)
        if list(self.head.classes) != self.classes:
            raise ModelError(f"{card_path}: classes differ from those of {weights.name}")
        if self.head.heads_sha256 != self.aus.sha256:
            raise ModelError(
                f"{weights}: trained on AU heads {self.head.heads_sha256[:12]}…, the installed ones are "
                f"{self.aus.sha256[:12]}… (retrain it with benchmarks/au_emotion.py)"
            )
        self.landmarkers = LandmarkerPool(processes)

    def features(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarker feature rows of crops and whether each was fitted (:func:`fit_features`)."""
        x, how = fit_features(self.landmarkers, crops)
        return x, how > 0

    def logits_of(self, x: np.ndarray, fitted: np.ndarray, mirror: bool = False) -> np.ndarray:
        """Class scores of feature rows (averaged with their mirror permutation if ``mirror``); rows not ``fitted``
        get ``log(fallback)``."""
        views = [x, x[:, MIRROR_INDEX]] if mirror else [x]
        z = np.mean([self.head.logits(self.head.design(v, self.aus)) for v in views], axis=0)
        z[~fitted] = np.log(self.head.fallback)
        return z

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float64)
        return self.logits_of(*self.features(crops))

    def raw_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """One landmarker fit per crop; with a test-time mode, the mirror view is taken in feature space."""
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float64)
        return self.logits_of(*self.features(crops), mirror=self.tta != "none")
