"""ferkit: offline facial expression recognition for images, folders and video.

``ferkit.analyze(paths)`` returns one record per face per sampled frame; ``ferkit.evaluate(dataset)`` scores models;
``ferkit.calibrate(model, dataset)`` fits per-class biases and a temperature; ``ferkit.fuse(paths)`` fuses channels.
"""

from __future__ import annotations

from typing import Any

from ferkit._version import __version__

__all__ = ["__version__", "analyze", "calibrate", "evaluate", "fuse", "load_model"]


def __getattr__(name: str) -> Any:  # lazy: importing ferkit stays cheap (no onnxruntime/mediapipe until used)
    if name in ("analyze", "evaluate", "calibrate"):
        from ferkit import api

        return getattr(api, name)
    if name == "fuse":
        from ferkit.analysis.channels import fuse_files

        return fuse_files
    if name == "load_model":
        from ferkit.models.loading import load_model

        return load_model
    raise AttributeError(name)
