"""Several models on the same faces: per-model outputs, optional fusion, and an optional gatekeeper model.

:class:`Ensemble` is what :class:`~ferkit.analysis.pipeline.Analyzer` runs on each batch of aligned crops. With one
model and
no gate it reproduces that model's output. With several, the first is the primary: its output becomes the record's
``emotion``/``probabilities`` unless a ``fusion`` strategy (:data:`ferkit.models.fusion.FUSION_STRATEGIES`)
combines them,
and every model's own output is kept per face (the record's ``models`` field).

A gate is a binary model (e.g. a spec mapping ``neutral`` → ``neutral`` and every other class → ``expressive``):
when its probability for ``gate_class`` is below ``gate_threshold`` the face is *gated*: the record keeps the
probabilities but has no ``emotion``, ``confidence`` or ``sentiment`` (see ``records.FaceRecord``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ferkit.errors import InputError, ModelError
from ferkit.models.base import EmotionModel
from ferkit.models.fusion import FUSION_STRATEGIES, ModelOutput, fuse_models, union_classes

#: (input size, channels): the crop a model takes; crops are aligned once per kind.
CropKind = tuple[int, str]


def crop_kind(model: EmotionModel) -> CropKind:
    return (int(model.input_size), str(model.channels))


def _dist(classes: list[str], probs: np.ndarray) -> dict[str, float]:
    return {c: round(float(v), 5) for c, v in zip(classes, probs, strict=True)}


@dataclass
class FaceScores:
    """The ensemble's result for one face: ``probs`` over :attr:`Ensemble.classes` and the winning class index."""

    probs: np.ndarray
    label: int
    models: dict[str, dict[str, Any]] | None = None  # per-model outputs (several models only)
    gate: dict[str, Any] | None = None
    gated: bool | None = None


@dataclass
class Ensemble:
    """Models (first = primary), optional ``fusion`` with ``reliability`` weights, optional binary ``gate``."""

    models: list[EmotionModel]
    fusion: str | None = None
    reliability: dict[str, dict[str, float]] | None = None
    gate: EmotionModel | None = None
    gate_class: str | None = None
    gate_threshold: float = 0.5

    def __post_init__(self) -> None:
        self.models = list(self.models)
        if not self.models:
            raise InputError("no model given")
        names = [m.name for m in self.models]
        for name in names:
            if names.count(name) > 1:
                raise ModelError(f"two models are named {name!r}; give each a distinct name (e.g. a spec's 'name')")
        self._check_fusion()
        self._check_gate()

    def _check_fusion(self) -> None:
        if self.fusion is None:
            if self.reliability is not None:
                raise InputError("a reliability report only applies with fusion 'reliability'")
            return
        if self.fusion not in FUSION_STRATEGIES:
            raise InputError(f"unknown fusion strategy {self.fusion!r}; choose one of {', '.join(FUSION_STRATEGIES)}")
        if len(self.models) < 2:
            raise InputError(f"fusion {self.fusion!r} needs at least two models, got one ({self.models[0].name})")
        if self.fusion == "reliability":
            if self.reliability is None:
                raise InputError("fusion 'reliability' needs a reliability report (an evaluate report of the models)")
            for m in self.models:
                if m.name not in self.reliability:
                    have = ", ".join(sorted(self.reliability)) or "none"
                    raise InputError(f"the reliability report has no results for model {m.name!r} (it has: {have})")
        elif self.reliability is not None:
            raise InputError(f"a reliability report only applies with fusion 'reliability', not {self.fusion!r}")
        # One uniform row through the fusion checks: shared classes, a valid reliability per model and class.
        rows = [ModelOutput(m.name, m.classes, np.full((1, len(m.classes)), 1 / len(m.classes))) for m in self.models]
        fuse_models(rows, self.fusion, self.reliability)

    def _check_gate(self) -> None:
        if self.gate is None:
            if self.gate_class is not None:
                raise InputError("a gate class was given without a gate model")
            return
        g = self.gate
        if len(g.classes) != 2:
            raise ModelError(
                f"gate model {g.name!r} has {len(g.classes)} classes ({', '.join(g.classes)}); a gate must be binary "
                "(e.g. a spec whose class_map maps onto two classes)"
            )
        if self.gate_class is None:
            raise InputError(f"a gate needs a gate class: one of {', '.join(g.classes)}")
        if self.gate_class not in g.classes:
            raise ModelError(
                f"gate class {self.gate_class!r} is not a class of gate model {g.name!r} ({', '.join(g.classes)})"
            )
        if not isinstance(self.gate_threshold, (int, float)) or not math.isfinite(self.gate_threshold):
            raise InputError(f"gate threshold must be a finite number, got {self.gate_threshold!r}")

    @property
    def primary(self) -> EmotionModel:
        return self.models[0]

    @property
    def name(self) -> str:
        """The record's ``model``: the primary model's name, or ``fused(a,b,…)``."""
        return f"fused({','.join(m.name for m in self.models)})" if self.fusion else self.primary.name

    @property
    def classes(self) -> list[str]:
        """Classes of the record's probabilities: the primary model's, or the fused union (``fusion`` module)."""
        return union_classes([m.classes for m in self.models]) if self.fusion else list(self.primary.classes)

    @property
    def crop_kinds(self) -> list[CropKind]:
        """Distinct crops the models (and gate) need, primary first."""
        kinds = [crop_kind(m) for m in self.models] + ([crop_kind(self.gate)] if self.gate is not None else [])
        return list(dict.fromkeys(kinds))

    def predict(self, crops: dict[CropKind, np.ndarray]) -> list[FaceScores]:
        """Run every model (sequentially) on N faces given as crops per kind; one :class:`FaceScores` per face."""
        n = len(next(iter(crops.values()))) if crops else 0
        if n == 0:
            return []
        outs = [ModelOutput(m.name, list(m.classes), m.predict_proba(crops[crop_kind(m)])) for m in self.models]
        if self.fusion:
            fused = fuse_models(outs, self.fusion, self.reliability)
            probs, labels = fused.probs, [fused.classes.index(c) for c in fused.labels]
        else:
            probs, labels = outs[0].probs, [int(k) for k in outs[0].probs.argmax(axis=1)]
        gate_scores = None
        if self.gate is not None:
            gp = self.gate.predict_proba(crops[crop_kind(self.gate)])
            gate_scores = gp[:, list(self.gate.classes).index(self.gate_class)]
        result = []
        for i in range(n):
            per_model = None
            if len(self.models) > 1:
                per_model = {}
                for o in outs:
                    top = int(o.probs[i].argmax())
                    per_model[o.model] = {
                        "emotion": o.classes[top],
                        "confidence": round(float(o.probs[i, top]), 5),
                        "probabilities": _dist(o.classes, o.probs[i]),
                    }
            gate, gated = None, None
            if gate_scores is not None:
                score = float(gate_scores[i])
                gate = {
                    "model": self.gate.name,  # type: ignore[union-attr]
                    "class": self.gate_class,
                    "score": round(score, 5),
                    "threshold": float(self.gate_threshold),
                }
                gated = score < self.gate_threshold
            result.append(FaceScores(probs[i], labels[i], per_model, gate, gated))
        return result

    @property
    def fusion_info(self) -> dict[str, Any] | None:
        """The record's ``fusion`` field: strategy and fused models, or None without fusion."""
        return {"strategy": self.fusion, "models": [m.name for m in self.models]} if self.fusion else None
