"""Post-hoc calibration: per-class logit biases (decisions) and a temperature (confidence), fitted on cached logits.

A :class:`Calibration` maps raw logits ``z`` to ``(z + bias) / temperature``. The biases move decisions towards
under-predicted classes; the temperature only rescales confidence (it never changes the argmax). It is stored as
``calibration.json`` beside the model (or any file given with ``--calibration``) together with the SHA-256 of the
weights it was fitted for, so a calibration made for other weights is refused.

Bias search works on logits computed once: each trial is one argmax over the cached array, so hundreds of trials
take seconds. Three searches (:data:`METHODS`): a coordinate-wise ``grid``, Optuna's Bayesian ``tpe`` and SciPy's
``evolution`` (differential evolution). Objectives (:data:`OBJECTIVES`): ``macro_f1`` or ``balanced_accuracy``
against labels, or ``distribution`` without labels (match target class ratios; higher is better, 0 is a perfect
match of the predicted class histogram).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import differential_evolution, minimize_scalar
from sklearn.metrics import balanced_accuracy_score, f1_score

from ferkit.errors import InputError, ModelError

SIDECAR = "calibration.json"
METHODS = ("grid", "tpe", "evolution")
OBJECTIVES = ("macro_f1", "balanced_accuracy", "distribution")
BIAS_RANGE = 2.0  # searched biases lie in [-BIAS_RANGE, BIAS_RANGE] (logit units)
ECE_BINS = 15


@dataclass
class Calibration:
    """Per-class logit biases and a temperature for one model's weights (``model_sha256``)."""

    model_sha256: str
    classes: list[str]
    bias: list[float]
    temperature: float = 1.0
    method: str = "none"
    objective: str = "none"
    fitted_on: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated scores ``(z + bias) / temperature``."""
        return (logits + np.asarray(self.bias, np.float32)) / np.float32(self.temperature)

    def check(self, sha256: str, classes: list[str]) -> None:
        """Refuse a calibration fitted for other weights or another class list."""
        if sha256.lower() != self.model_sha256.lower():
            raise ModelError(
                f"calibration was fitted for model {self.model_sha256[:12]}…, not this model ({sha256[:12]}…); "
                "refit it with `ferkit calibrate` or run with --no-calibration"
            )
        if list(classes) != list(self.classes):
            raise ModelError(f"calibration classes {self.classes} differ from the model's {classes}")

    def save(self, path: Path) -> Path:
        from ferkit.media.files import atomic_write_text

        return atomic_write_text(path, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Calibration:
        """Read and validate a calibration file (corrupt, incomplete or out-of-range files raise ``ModelError``)."""
        try:
            return cls._load(path)
        except ModelError as e:
            raise ModelError(f"{path}: not a valid calibration file ({str(e).removeprefix(f'{path}: ')})") from None

    @classmethod
    def _load(cls, path: Path) -> Calibration:
        from ferkit.models import schema as s

        data = s.read_json_object(path, "calibration file")
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(f"{path}: unknown key {unknown[0]!r} in a calibration file")
        for key in ("model_sha256", "classes", "bias"):
            if key not in data:
                raise ModelError(f"{path}: calibration file lacks the key {key!r}")
        classes = s.class_list(data["classes"], "classes", path)
        bias = data["bias"]
        if not isinstance(bias, list) or len(bias) != len(classes):
            raise ModelError(f"{path}: bias must be a list of one finite number per class ({len(classes)})")
        bias = [s.number(b, f"bias[{i}]", path, -MAX_BIAS, MAX_BIAS) for i, b in enumerate(bias)]
        temperature = s.number(data.get("temperature", 1.0), "temperature", path, *TEMPERATURE_RANGE)
        for key in ("method", "objective"):
            if key in data:
                s.text(data[key], key, path, empty=True)
        for key in ("fitted_on", "metrics"):
            if not isinstance(data.get(key, {}), dict):
                raise ModelError(f"{path}: {key} must be an object")
        return cls(
            model_sha256=s.sha256_hex(data["model_sha256"], "model_sha256", path),
            classes=classes,
            bias=bias,
            temperature=temperature,
            method=data.get("method", "none"),
            objective=data.get("objective", "none"),
            fitted_on=data.get("fitted_on", {}),
            metrics=data.get("metrics", {}),
        )


#: Bounds of a loaded calibration: biases beyond ±MAX_BIAS logits or temperatures outside the range only pin every
#: face to one class or make the probabilities uniform / one-hot (fits stay well inside: BIAS_RANGE, T ~ 0.5–3).
MAX_BIAS = 50.0
TEMPERATURE_RANGE = (0.05, 20.0)


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict]]:
    """ECE over ``bins`` equal-width confidence bins, and the per-bin table for a reliability diagram."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    correct = pred == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = idx == b
        n = int(m.sum())
        acc = float(correct[m].mean()) if n else None
        cf = float(conf[m].mean()) if n else None
        if n:
            ece += n / len(y) * abs(acc - cf)
        table.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "count": n, "accuracy": acc, "confidence": cf}
        )
    return float(ece), table


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood of ``y`` (searched on log T in [-3, 3])."""

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / math.exp(log_t))[np.arange(len(y)), y].mean())

    return float(math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def distribution_distance(pred: np.ndarray, target: np.ndarray) -> float:
    """Total-variation distance between the predicted class histogram and target ratios (0 = same, 1 = disjoint)."""
    hist = np.bincount(pred, minlength=len(target)) / max(len(pred), 1)
    return float(0.5 * np.abs(hist - target).sum())


def make_objective(
    name: str, y: np.ndarray | None = None, target: np.ndarray | None = None
) -> Callable[[np.ndarray], float]:
    """Score of argmax predictions (higher is better)."""
    if name not in OBJECTIVES:
        raise InputError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    if name == "distribution":
        if target is None:
            raise InputError("the distribution objective needs target class ratios (--target angry=0.1,...)")
        return lambda pred: -distribution_distance(pred, target)
    if y is None:
        raise InputError(f"the {name} objective needs labelled data")
    labels = np.unique(y)
    if name == "macro_f1":
        return lambda pred: float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    return lambda pred: float(balanced_accuracy_score(y, pred))


def search_bias(
    logits: np.ndarray, objective: Callable[[np.ndarray], float], method: str, trials: int = 200, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Biases maximising ``objective(argmax(logits + b))``; returns (bias centred on 0, best score)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    c = logits.shape[1]

    def score(b: np.ndarray) -> float:
        return objective((logits + b).argmax(axis=1))

    best_b, best = np.zeros(c), score(np.zeros(c))
    if method == "grid":
        values = np.linspace(-BIAS_RANGE, BIAS_RANGE, 17)
        used = 1
        while used < trials:  # coordinate ascent: sweep one class's bias over the grid, keep the best, next class
            improved = False
            for k in range(c):
                for v in values:
                    if used >= trials:
                        break
                    b = best_b.copy()
                    b[k] = v
                    s = score(b)
                    used += 1
                    if s > best + 1e-12:
                        best_b, best, improved = b, s, True
            if not improved:
                break
    elif method == "tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial({f"b{k}": 0.0 for k in range(c)})
        study.optimize(
            lambda t: score(np.array([t.suggest_float(f"b{k}", -BIAS_RANGE, BIAS_RANGE) for k in range(c)])),
            n_trials=trials,
        )
        if study.best_value > best:
            best_b, best = np.array([study.best_params[f"b{k}"] for k in range(c)]), study.best_value
    else:
        popsize = 5  # scipy multiplies by the dimension: 5 * c candidates per generation
        res = differential_evolution(
            lambda b: -score(b),
            [(-BIAS_RANGE, BIAS_RANGE)] * c,
            popsize=popsize,
            maxiter=max(1, trials // (popsize * c) - 1),
            seed=seed,
            polish=False,
            tol=0,
            x0=np.zeros(c),
        )
        if -res.fun > best:
            best_b, best = np.asarray(res.x), float(-res.fun)
    return best_b - best_b.mean(), best


def fit_calibration(
    logits: np.ndarray,
    classes: list[str],
    model_sha256: str,
    y: np.ndarray | None = None,
    objective: str = "macro_f1",
    method: str = "tpe",
    target: np.ndarray | None = None,
    trials: int = 200,
    temperature: bool = True,
    seed: int = 0,
    fitted_on: dict | None = None,
) -> Calibration:
    """Search biases for ``objective``, then (with labels) fit the temperature on the biased logits."""
    fn = make_objective(objective, y, target)
    bias, _ = search_bias(logits, fn, method, trials, seed) if method != "none" else (np.zeros(len(classes)), 0.0)
    t = fit_temperature(logits + bias, y) if temperature and y is not None else 1.0
    return Calibration(
        model_sha256=model_sha256,
        classes=list(classes),
        bias=[round(float(b), 6) for b in bias],
        temperature=round(t, 6),
        method=method,
        objective=objective,
        fitted_on=dict(
            fitted_on or {}, trials=trials, seed=seed, target=None if target is None else [float(v) for v in target]
        ),
    )


def parse_target(text: str, classes: list[str]) -> np.ndarray:
    """``"angry=1,happy=2,..."`` (ratios, normalised; unnamed classes get 0) → array in model class order."""
    ratios = np.zeros(len(classes))
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in classes:
            raise InputError(f"--target: unknown class {name.strip()!r}; the model's classes are {', '.join(classes)}")
        try:
            ratios[classes.index(name.strip())] = float(value)
        except ValueError:
            raise InputError(f"--target: {part!r} is not class=ratio") from None
    if not np.isfinite(ratios).all() or (ratios < 0).any() or (ratios > 1e6).any() or ratios.sum() <= 0:
        raise InputError("--target ratios must be finite numbers in [0, 1e6], not all zero")
    return ratios / ratios.sum()
