"""A model seen through a smaller taxonomy: ``load_model("ferkit-extended:basic7")``.

:class:`ClassView` keeps the columns of the named taxonomy's classes and drops the rest, so its probabilities are the
model's own, renormalised over those classes (softmax over a subset of the logits). This is how a model with extra
classes (``speech_action``, ``hard_case``, ``contempt`` …) maps back to the basic ones: the best basic reading of the
same face. The inner model's calibration, when it has one, is applied before the columns are taken.
"""

from __future__ import annotations

import numpy as np

from ferkit.errors import ModelError
from ferkit.models.base import EmotionModel


class ClassView(EmotionModel):
    """``inner`` restricted to ``classes`` (each must be one of the inner model's classes)."""

    def __init__(self, inner: EmotionModel, classes: list[str] | tuple[str, ...], view: str) -> None:
        missing = [c for c in classes if c not in inner.classes]
        if missing:
            raise ModelError(
                f"{inner.name}:{view}: the model has no {', '.join(missing)} (its classes: {', '.join(inner.classes)})"
            )
        self.inner = inner
        self.view = view
        self.name = f"{inner.name}:{view}"
        self.classes = list(classes)
        self.columns = [inner.classes.index(c) for c in classes]
        self.input_size, self.channels, self.sha256 = inner.input_size, inner.channels, inner.sha256
        self.folder = None  # no calibration sidecar of its own: the inner model's applies

    def forward_logits(self, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
        z = self.inner.forward_logits(crops, batch_size)
        if self.inner.calibration is not None:  # linear in z, so averaging over test-time views commutes with it
            z = self.inner.calibration.apply(z)
        return z[:, self.columns]
