"""Any ONNX image classifier as a ferkit model, described by a small JSON spec file (``load_model("x.json")``).

A spec names the ONNX file (relative to the spec) and how to feed and read it::

    {"name": "my-fer", "onnx_file": "my.onnx", "input_size": 64, "channels": "rgb", "layout": "nchw",
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "classes": ["anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"],
     "class_map": {"anger": "angry", "contempt": null, "happiness": "happy", "sadness": "sad"},
     "outputs": "logits", "sha256": "…"}

Required: ``name``, ``onnx_file``, ``input_size``, ``channels`` (``gray``, ``rgb`` or ``bgr``: the order the network
expects; ferkit hands it RGB crops and flips them for ``bgr``), ``mean``, ``std`` (a number, or one per channel in
the network's channel order; ``x = (pixel / 255 - mean) / std``), ``classes`` (the network's own names, in output
order). Optional: ``layout`` (``nchw``, default, or ``nhwc``), ``class_map`` (own name → ferkit class, or ``null`` to
drop the class; unlisted classes keep their own name), ``outputs`` (``logits``, default, or ``probabilities``: the
network already ends in a softmax). ``sha256`` (of the ONNX file) is required:
it is checked before the file is loaded. Any other key is refused.

With a ``class_map``, the probabilities of classes mapped to the same name are summed, dropped classes are removed
and the rest renormalised; the model's ``classes`` are the mapped names in order of first appearance and its
``raw_logits`` are the log of those probabilities (so ``predict_proba`` returns them unchanged). Without a map and
with ``outputs: logits`` the network's logits are passed through as they are.
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ferkit.errors import ModelError
from ferkit.models.base import (
    MAX_INPUT_SIZE,
    MAX_NORM,
    MIN_STD,
    EmotionModel,
    check_weights_file,
    open_session,
    sha256_file,
    softmax,
)
from ferkit.models.schema import number, read_json_object, sha256_hex

REQUIRED = ("name", "onnx_file", "input_size", "channels", "mean", "std", "classes", "sha256")
OPTIONAL = ("layout", "class_map", "outputs")
CHANNELS = ("gray", "rgb", "bgr")
LAYOUTS = ("nchw", "nhwc")
OUTPUTS = ("logits", "probabilities")


def _norm(spec: dict, key: str, n_channels: int, path: Path) -> np.ndarray:
    """``mean``/``std`` as an array broadcastable over the channel axis (last axis of NHWC crops)."""
    v = spec[key]
    values = v if isinstance(v, list) else [v]
    if not values or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in values):
        raise ModelError(f"spec {path}: key {key!r} must be a number or a list of numbers, got {v!r}")
    lo = MIN_STD if key == "std" else -MAX_NORM
    for i, x in enumerate(values):
        number(x, key if len(values) == 1 else f"{key}[{i}]", f"spec {path}", lo, MAX_NORM)
    if isinstance(v, list) and len(values) not in (1, n_channels):
        raise ModelError(f"spec {path}: key {key!r} has {len(values)} values for {n_channels} channel(s)")
    arr = np.asarray(values, np.float32)
    if key == "std" and np.any(arr == 0):
        raise ModelError(f"spec {path}: key 'std' must not be 0")
    return arr if len(arr) > 1 else arr[0]


def read_spec(path: Path) -> dict:
    """The spec as a dict, with every key checked; ``ModelError`` naming the offending key."""
    path = Path(path)
    spec = read_json_object(path, "model spec")
    for key in spec:
        if key not in REQUIRED + OPTIONAL:
            raise ModelError(f"model spec {path}: unknown key {key!r} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    for key in REQUIRED:
        if key not in spec:
            raise ModelError(f"model spec {path} lacks the key {key!r}")
    spec = {"layout": "nchw", "outputs": "logits", "class_map": {}, "sha256": None, **spec}
    for key, allowed in (("channels", CHANNELS), ("layout", LAYOUTS), ("outputs", OUTPUTS)):
        if spec[key] not in allowed:
            raise ModelError(f"spec {path}: key {key!r} must be one of {', '.join(allowed)}, got {spec[key]!r}")
    for key in ("name", "onnx_file"):
        if not isinstance(spec[key], str) or not spec[key]:
            raise ModelError(f"spec {path}: key {key!r} must be a non-empty string")
    size = spec["input_size"]
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= MAX_INPUT_SIZE:
        raise ModelError(f"spec {path}: key 'input_size' must be an integer in [8, {MAX_INPUT_SIZE}], got {size!r}")
    classes = spec["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise ModelError(f"spec {path}: key 'classes' must list at least two distinct class names")
    cmap = spec["class_map"]
    if not isinstance(cmap, dict) or not all(v is None or (isinstance(v, str) and v) for v in cmap.values()):
        raise ModelError(f"spec {path}: key 'class_map' must map class names to a class name or null")
    for own in cmap:
        if own not in classes:
            raise ModelError(f"spec {path}: key 'class_map' names {own!r}, which is not in 'classes'")
    if spec["sha256"] is None:
        raise ModelError(f"spec {path}: key 'sha256' is required (the SHA-256 of the ONNX file; sha256sum prints it)")
    sha256_hex(spec["sha256"], "key 'sha256'", f"spec {path}")
    return spec


class SpecModel(EmotionModel):
    """An ONNX classifier described by a spec file (see the module doc), run with onnxruntime."""

    folder = None  # no model folder: no sidecar calibration is looked up (pass one with --calibration)

    def __init__(self, spec_path: Path, threads: int = 0) -> None:
        self.source_file = Path(spec_path)
        self.spec = spec = read_spec(self.source_file)
        self.name, self.input_size = spec["name"], spec["input_size"]
        self.channels = "gray" if spec["channels"] == "gray" else "rgb"  # what ferkit hands the model
        n_ch = 1 if spec["channels"] == "gray" else 3
        self._mean, self._std = _norm(spec, "mean", n_ch, self.source_file), _norm(spec, "std", n_ch, self.source_file)
        onnx_path = (self.source_file.parent / spec["onnx_file"]).resolve()
        if not onnx_path.is_file():
            raise ModelError(f"spec {self.source_file}: ONNX file missing: {onnx_path}")
        self.onnx_path = onnx_path
        check_weights_file(onnx_path, f"spec {self.source_file}")
        self.sha256 = sha256_file(onnx_path)
        if spec["sha256"] is not None and spec["sha256"].lower() != self.sha256:
            raise ModelError(
                f"SHA-256 mismatch for {onnx_path}: spec says {spec['sha256'][:12]}…, file is {self.sha256[:12]}… "
                "(corrupted or replaced model; refusing to load)"
            )
        own = spec["classes"]
        mapped = [spec["class_map"].get(c, c) for c in own]
        self.classes = list(dict.fromkeys(c for c in mapped if c is not None))
        if not self.classes:
            raise ModelError(f"spec {self.source_file}: key 'class_map' drops every class")
        # (own classes, mapped classes) 0/1 matrix: probabilities @ matrix sums merged classes, drops null ones.
        self._merge: np.ndarray | None = None
        if mapped != own:
            self._merge = np.zeros((len(own), len(self.classes)), np.float64)
            for i, c in enumerate(mapped):
                if c is not None:
                    self._merge[i, self.classes.index(c)] = 1.0
        self.session = open_session(onnx_path, threads)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self._input, self._output = inp.name, out.name
        s = self.input_size
        want = [n_ch, s, s] if spec["layout"] == "nchw" else [s, s, n_ch]
        got = list(inp.shape[1:])
        if len(inp.shape) != 4 or any(isinstance(g, int) and g != w for g, w in zip(got, want, strict=True)):
            raise ModelError(f"{onnx_path}: input shape {inp.shape} does not match the spec (N, {want})")
        n_out = out.shape[-1] if out.shape else None
        if isinstance(n_out, int) and n_out != len(own):
            raise ModelError(f"{onnx_path}: {n_out} outputs, but the spec lists {len(own)} classes")

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """uint8 crops (N, S, S) gray or (N, S, S, 3) RGB → the network's float32 input."""
        x = np.asarray(crops).astype(np.float32) / 255.0
        if x.ndim == 3:
            x = x[..., None]
        elif self.spec["channels"] == "bgr":
            x = x[..., ::-1]
        x = (x - self._mean) / self._std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.spec["layout"] == "nchw" else x, np.float32)

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = np.concatenate(
            [
                self.session.run([self._output], {self._input: self.prepare(crops[i : i + batch_size])})[0]
                for i in range(0, len(crops), batch_size)
            ]
        ).astype(np.float64)
        if self._merge is None and self.spec["outputs"] == "logits":
            return out.astype(np.float32)
        probs = softmax(out) if self.spec["outputs"] == "logits" else np.clip(out, 0.0, None)
        if self._merge is not None:
            probs = probs @ self._merge
        total = probs.sum(axis=1, keepdims=True)
        probs = np.divide(probs, total, out=np.full_like(probs, 1 / probs.shape[1]), where=total > 0)
        return np.log(np.clip(probs, 1e-12, None)).astype(np.float32)


def load_spec(path: str | Path, threads: int = 0) -> SpecModel:
    """A :class:`SpecModel` from a spec file; ``ModelError`` for a bad spec or a missing ONNX file."""
    return SpecModel(Path(path), threads)
