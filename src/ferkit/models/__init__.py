"""Emotion models: the interface and ONNX model folders (:mod:`.base`), loading by name (:mod:`.loading`), ONNX
spec files (:mod:`.spec`), the optional ``fer`` backend (:mod:`.fer`), calibration, fusion, ensembles and gates.
The model files themselves are data, under ``ferkit/assets/models/``."""

from ferkit.models.base import EmotionModel, OnnxModel
from ferkit.models.loading import load_model

__all__ = ["EmotionModel", "OnnxModel", "load_model"]
