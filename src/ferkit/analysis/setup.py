"""Which models an analysis runs and how they are combined: :class:`ModelSetup` and :func:`make_analyzer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ferkit.analysis.pipeline import AnalyzeOptions, Analyzer
from ferkit.errors import InputError
from ferkit.models.base import EmotionModel
from ferkit.models.fusion import load_reliability
from ferkit.models.loading import DEFAULT_MODEL, load_model

#: onnxruntime threads for analysis: the model runs in worker threads beside decoding and tracking, and one
#: thread each measured faster than two fighting over two cores (benchmarks/video_speed.py).
ANALYSIS_THREADS = 1

ModelArg = str | Path | EmotionModel


def _load(model: ModelArg, calibration: bool | str | Path) -> EmotionModel:
    return model if isinstance(model, EmotionModel) else load_model(model, ANALYSIS_THREADS, calibration)


def _models(model: ModelArg | Sequence[ModelArg], calibration: bool | str | Path) -> list[EmotionModel]:
    """One model or several (first = primary), each loaded (and hash-checked) before any work starts."""
    models = [model] if isinstance(model, (str, Path, EmotionModel)) else list(model)
    if not models:
        raise InputError("no model given")
    if len(models) > 1 and not isinstance(calibration, bool):
        raise InputError("a calibration file applies to one model; calibrations beside model folders load anyway")
    return [_load(m, calibration) for m in models]


@dataclass
class ModelSetup:
    """Which models score the faces and how: one or several models (first = primary), their calibration, an
    optional fusion strategy (with a reliability report for ``reliability``), an optional binary gate and the
    models' test-time augmentation."""

    model: ModelArg | Sequence[ModelArg] = DEFAULT_MODEL
    calibration: bool | str | Path = True
    fusion: str | None = None
    reliability: str | Path | dict | None = None
    gate: ModelArg | None = None
    gate_class: str | None = None
    gate_threshold: float = 0.5
    tta: str = "auto"  # test-time augmentation of the emotion models (none, flip, flip_shift, auto); not of the gate


def make_analyzer(
    setup: ModelSetup | ModelArg | Sequence[ModelArg] = DEFAULT_MODEL, options: AnalyzeOptions | None = None
) -> Analyzer:
    """An :class:`Analyzer` with its models (and gate) loaded and the combination checked."""
    s = setup if isinstance(setup, ModelSetup) else ModelSetup(setup)
    models = _models(s.model, s.calibration)
    gate_model = None
    if s.gate is not None:
        gate_model = _load(s.gate, s.calibration if isinstance(s.calibration, bool) else True)
    return Analyzer(
        models,
        options or AnalyzeOptions(),
        s.fusion,
        load_reliability(s.reliability),
        gate_model,
        s.gate_class,
        s.gate_threshold,
        s.tta,
    )
