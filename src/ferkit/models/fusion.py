"""Decision-level fusion of several models' outputs for the same faces (channels over time:
``ferkit.analysis.channels``).

Model fusion (``fuse_models``) combines per-face probability rows of several models:

* ``majority``: each model votes its argmax class. Ties between classes with the same number of votes go to the
  class with the higher summed probability over all models, then to the earlier class in the fused class order.
  ``probs`` holds the vote shares and ``votes`` the winner's vote count per row.
* ``soft``: the mean of the models' probabilities, each model weighted per row by its own max probability.
* ``reliability``: model m's probability for class c is weighted by ``reliability[m][c]`` (e.g. per-class F1 or
  precision from ``ferkit evaluate`` on a validation set, see ``reliability_from_report``); rows are renormalised.

Class sets: the fused classes are the union of the models' classes, ferkit's canonical classes first in their order,
extra classes (e.g. ``contempt``) appended sorted. A model lacking a class contributes nothing to it: its
probability mass stays spread over its own classes. Two models sharing no class at all is an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.errors import InputError
from ferkit.labels.folders import BASIC_CLASSES

CLASSES = BASIC_CLASSES
FUSION_STRATEGIES = ("majority", "soft", "reliability")
Vector = dict[str, float]


@dataclass
class ModelOutput:
    """One model's probabilities for N faces: ``probs[i, j]`` is P(``classes[j]``) for face i."""

    model: str
    classes: list[str]
    probs: np.ndarray


@dataclass
class FusedOutput:
    """Fused probabilities (N, C') over ``classes``, the argmax ``labels``, and majority ``votes`` (else None)."""

    classes: list[str]
    probs: np.ndarray
    labels: list[str]
    strategy: str
    models: list[str]
    votes: np.ndarray | None = None


def union_classes(class_lists: list[list[str]]) -> list[str]:
    """Canonical classes present in any list, in ferkit's order, then the extra classes sorted."""
    seen = {c for cs in class_lists for c in cs}
    return [c for c in CLASSES if c in seen] + sorted(seen - set(CLASSES))


def _aligned(outputs: list[ModelOutput]) -> tuple[list[str], np.ndarray]:
    """Validate the outputs; return the fused classes and probs (M, N, C') with 0 for a model's absent classes."""
    if not outputs:
        raise InputError("no model outputs to fuse")
    for o in outputs:
        if o.probs.ndim != 2 or o.probs.shape[1] != len(o.classes) or len(set(o.classes)) != len(o.classes):
            raise InputError(f"model {o.model}: probs shape {o.probs.shape} does not match classes {o.classes}")
    if len({o.probs.shape[0] for o in outputs}) > 1:
        raise InputError("mismatched row counts: " + ", ".join(f"{o.model}={o.probs.shape[0]}" for o in outputs))
    for i, a in enumerate(outputs):
        for b in outputs[i + 1 :]:
            if not set(a.classes) & set(b.classes):
                raise InputError(f"mismatched class sets: models {a.model} and {b.model} share no class")
    classes = union_classes([o.classes for o in outputs])
    n = outputs[0].probs.shape[0]
    stacked = np.zeros((len(outputs), n, len(classes)))
    for m, o in enumerate(outputs):
        idx = [classes.index(c) for c in o.classes]
        stacked[m][:, idx] = o.probs
    return classes, stacked


def fuse_models(
    outputs: list[ModelOutput], strategy: str, reliability: dict[str, dict[str, float]] | None = None
) -> FusedOutput:
    """Fuse several models' outputs for the same N faces with one of ``FUSION_STRATEGIES`` (see module doc)."""
    if strategy not in FUSION_STRATEGIES:
        raise InputError(f"unknown fusion strategy {strategy!r}; choose one of {', '.join(FUSION_STRATEGIES)}")
    classes, p = _aligned(outputs)
    votes = None
    if strategy == "majority":
        n_models, n, n_cls = p.shape
        counts = np.zeros((n, n_cls))
        for o in outputs:
            local = np.argmax(o.probs, axis=1)  # ties inside one model: its first class
            counts[np.arange(n), [classes.index(o.classes[k]) for k in local]] += 1
        summed = p.sum(axis=0)
        winners = []
        for i in range(n):
            tied = np.flatnonzero(counts[i] == counts[i].max())
            winners.append(int(tied[np.argmax(summed[i, tied])]))  # np.argmax keeps the first (class order) on ties
        fused, votes = counts / n_models, counts[np.arange(n), winners].astype(int)
        labels = [classes[k] for k in winners]
    else:
        if strategy == "soft":
            w = np.array([o.probs.max(axis=1) for o in outputs])[:, :, None]  # (M, N, 1)
        else:
            if reliability is None:
                raise InputError("the reliability strategy needs per-class reliabilities (e.g. F1 from evaluate)")
            w = np.zeros((len(outputs), 1, len(classes)))
            for m, o in enumerate(outputs):
                for c in o.classes:
                    r = reliability.get(o.model, {}).get(c)
                    if r is None or not math.isfinite(r) or r < 0:
                        raise InputError(f"no valid reliability for model {o.model}, class {c}")
                    w[m, 0, classes.index(c)] = r
        scores = (w * p).sum(axis=0)
        total = scores.sum(axis=1, keepdims=True)
        fused = np.divide(scores, total, out=np.zeros_like(scores), where=total > 0)
        labels = [classes[k] for k in np.argmax(fused, axis=1)]
    return FusedOutput(classes, fused, labels, strategy, [o.model for o in outputs], votes)


def reliability_from_report(report: dict, metric: str = "f1") -> dict[str, dict[str, float]]:
    """``{model: {class: metric}}`` from an evaluate report (``{"results": [block, …]}``); one block per model."""
    out: dict[str, dict[str, float]] = {}
    for block in report.get("results", []):
        if block["model"] in out:
            raise InputError(f"report has several blocks for model {block['model']}; pass one validation report")
        out[block["model"]] = {c: float(m[metric]) for c, m in block["per_class"].items()}
    return out


def load_reliability(reliability: str | Path | dict | None) -> dict[str, dict[str, float]] | None:
    """Per-model, per-class reliabilities: from an evaluate report (a file or its dict) or given directly as
    ``{model: {class: value}}``; ``InputError`` for an unreadable or malformed report."""
    if reliability is None:
        return None
    if isinstance(reliability, (str, Path)):
        try:
            reliability = json.loads(Path(reliability).read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise InputError(f"cannot read reliability report {reliability}: {e}") from e
    if not isinstance(reliability, dict):
        raise InputError("a reliability report must be a JSON object (an evaluate report)")
    if "results" not in reliability:
        return _checked_reliability(reliability)
    try:
        return _checked_reliability(reliability_from_report(reliability))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"malformed reliability report (expected `ferkit evaluate --report` output): {e!r}") from e


def _checked_reliability(rel: dict) -> dict[str, dict[str, float]]:
    """``{model: {class: value}}`` with every value a number in [0, 1] and at least one positive per model (all
    zeros would give every face all-zero probabilities)."""
    for model, per_class in rel.items():
        if not isinstance(per_class, dict) or not per_class:
            raise InputError(f"reliability of model {model!r} must map classes to numbers, got {per_class!r}"[:300])
        for c, v in per_class.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise InputError(f"reliability of model {model!r}, class {c!r} must be in [0, 1], got {v!r}"[:300])
        if not any(v > 0 for v in per_class.values()):
            raise InputError(f"reliability of model {model!r} is 0 for every class: it would silence the model")
    return rel
