"""Action-unit heads: per-AU logistic regressions over :mod:`au_features`, stored as plain JSON numbers.

Each head standardises its features (``mean``/``scale``), takes a logit ``coef · z + intercept`` and gives a presence
probability; ``threshold`` (a probability, chosen on inner-CV out-of-fold predictions at training time) turns it into
a yes/no. Intensity is the logit rescaled to 0–1 between the threshold logit and a high quantile of the training
positives' logits: UNCALIBRATED (CK+ has no intensity codes), use it for ranking / smoothing only.

Lateral heads (AU2, AU12, AU14) see only the subject's-left and midline features; the right-side output is the same
head applied to the mirrored feature vector (``features[MIRROR_INDEX]``). AU43 (eyes closed) has no labels: it is a
documented rule on the eyeBlink blendshapes and the eye aperture (see :func:`au43`), NOT validated.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ferkit.faces.au_features import FEATURE_NAMES, MIRROR_INDEX

FORMAT = "ferkit-au-heads/1"
AU43_BLINK_MIN = 0.5  # both eyeBlink blendshapes at least this …
AU43_OPEN_MAX = 0.035  # … and both eye apertures (upper–lower lid, in inter-ocular distances) at most this
_I_BLINK = (FEATURE_NAMES.index("bs_eyeBlinkLeft"), FEATURE_NAMES.index("bs_eyeBlinkRight"))
_I_OPEN = (FEATURE_NAMES.index("eye_open_L"), FEATURE_NAMES.index("eye_open_R"))


@dataclass(frozen=True)
class AUHead:
    """One logistic head. ``features`` are names from :data:`FEATURE_NAMES`; arrays are float64."""

    au: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    logit_hi: float
    index: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", np.array([FEATURE_NAMES.index(n) for n in self.features], np.int64))

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Logits for feature rows ``x`` (…, N_FEATURES), full feature vectors."""
        z = (np.asarray(x, np.float64)[..., self.index] - self.mean) / self.scale
        return z @ self.coef + self.intercept

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Presence probabilities."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(x), -50, 50)))

    def intensity(self, logit: np.ndarray) -> np.ndarray:
        """Uncalibrated 0–1 intensity: 0 at or below the threshold, 1 at the training positives' high quantile."""
        t = float(np.log(self.threshold / (1.0 - self.threshold)))
        return np.clip((np.asarray(logit) - t) / max(self.logit_hi - t, 1e-6), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d.pop("index")
        for k in ("mean", "scale", "coef"):
            d[k] = [float(v) for v in d[k]]
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AUHead:
        """Inverse of :meth:`to_dict`."""
        arr = {k: np.asarray(d[k], np.float64) for k in ("mean", "scale", "coef")}
        return cls(
            d["au"],
            tuple(d["features"]),
            intercept=float(d["intercept"]),
            threshold=float(d["threshold"]),
            logit_hi=float(d["logit_hi"]),
            **arr,
        )


@dataclass(frozen=True)
class AUEstimate:
    """One AU's output: probability, thresholded presence and uncalibrated intensity."""

    probability: float
    present: bool
    intensity: float


def au43(x: np.ndarray) -> AUEstimate:
    """Eyes closed (AU43), by rule: both eyeBlink ≥ 0.5 and both apertures ≤ 0.035 IOD. Unvalidated (no labels).

    ``probability`` is the smaller eyeBlink score (not a calibrated probability); intensity rescales it 0.5→0, 0.8→1.
    """
    blink = float(min(x[_I_BLINK[0]], x[_I_BLINK[1]]))
    aperture = float(max(x[_I_OPEN[0]], x[_I_OPEN[1]]))
    present = blink >= AU43_BLINK_MIN and aperture <= AU43_OPEN_MAX
    return AUEstimate(blink, present, float(np.clip((blink - 0.5) / 0.3, 0, 1)) if present else 0.0)


class AUModel:
    """All heads: ``predict(features)`` → ``{"AU1": AUEstimate, …, "AU12_L": …, "AU12_R": …, "AU43": …}``."""

    def __init__(self, heads: dict[str, AUHead], lateral: dict[str, AUHead], meta: dict[str, Any] | None = None):
        self.heads = heads
        self.lateral = lateral
        self.meta = meta or {}

    @property
    def aus(self) -> list[str]:
        """Names of the bilateral (learned) AU outputs."""
        return list(self.heads)

    def predict(self, x: np.ndarray) -> dict[str, AUEstimate]:
        """Estimates for one feature vector from :func:`au_features.features`."""
        x = np.asarray(x, np.float64)
        out: dict[str, AUEstimate] = {}
        for name, head in self.heads.items():
            out[name] = self._estimate(head, x)
        xm = x[MIRROR_INDEX]
        for name, head in self.lateral.items():
            out[f"{name}_L"] = self._estimate(head, x)
            out[f"{name}_R"] = self._estimate(head, xm)
        out["AU43"] = au43(x)
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(N, len(aus)) probabilities of the bilateral heads for feature rows ``x`` (N, N_FEATURES)."""
        x = np.atleast_2d(np.asarray(x, np.float64))
        return np.stack([h.proba(x) for h in self.heads.values()], axis=1)

    @staticmethod
    def _estimate(head: AUHead, x: np.ndarray) -> AUEstimate:
        z = float(head.logit(x))
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return AUEstimate(float(p), bool(p >= head.threshold), float(head.intensity(np.asarray(z))))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (no pickle)."""
        return {
            "format": FORMAT,
            "feature_names": list(FEATURE_NAMES),
            "heads": {k: h.to_dict() for k, h in self.heads.items()},
            "lateral_heads": {k: h.to_dict() for k, h in self.lateral.items()},
            "au43_rule": {"blink_min": AU43_BLINK_MIN, "aperture_max": AU43_OPEN_MAX, "validated": False},
            "meta": self.meta,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AUModel:
        """Build from :meth:`to_dict` output; checks the format tag and the feature list."""
        if d.get("format") != FORMAT:
            raise ValueError(f"unknown AU heads format {d.get('format')!r}, expected {FORMAT!r}")
        if list(d["feature_names"]) != list(FEATURE_NAMES):
            raise ValueError("AU heads were trained on a different feature list than au_features.FEATURE_NAMES")
        heads = {k: AUHead.from_dict(v) for k, v in d["heads"].items()}
        lateral = {k: AUHead.from_dict(v) for k, v in d.get("lateral_heads", {}).items()}
        return cls(heads, lateral, d.get("meta", {}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AUModel:
        """Read a JSON file written by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))
