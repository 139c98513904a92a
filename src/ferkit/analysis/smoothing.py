"""Temporal smoothing of per-face emotion timelines: exponential smoothing plus a hysteresis rule.

Speech and blinks make frame-level labels flicker. Per face track, probabilities are smoothed with a time constant
``tau`` (seconds, so the result does not depend on the sampling rate), and the smoothed label only switches when a
new class leads the current one by ``margin`` for ``k`` consecutive samples. The smoother is causal, so records can
be written as they are produced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _State:
    probs: np.ndarray
    label: int
    time: float
    candidate: int = -1
    streak: int = 0


@dataclass
class Smoother:
    """Causal per-track smoother; call :meth:`update` in time order for each face track."""

    tau: float = 0.5
    margin: float = 0.1
    k: int = 3
    _states: dict[object, _State] = field(default_factory=dict)

    def update(self, key: object, timestamp: float | None, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """Feed one sample of track ``key``; returns (smoothed label index, smoothed probabilities)."""
        probs = np.asarray(probs, dtype=np.float64)
        if timestamp is None:  # a still image: nothing to smooth
            return int(probs.argmax()), probs
        st = self._states.get(key)
        if st is None:
            st = self._states[key] = _State(probs.copy(), int(probs.argmax()), timestamp)
            return st.label, st.probs
        dt = max(0.0, timestamp - st.time)
        alpha = 1.0 - math.exp(-dt / self.tau) if self.tau > 0 else 1.0
        st.probs = (1 - alpha) * st.probs + alpha * probs
        st.time = timestamp
        top = int(st.probs.argmax())
        if top != st.label and st.probs[top] - st.probs[st.label] >= self.margin:
            st.streak = st.streak + 1 if top == st.candidate else 1
            st.candidate = top
            if st.streak >= self.k:
                st.label, st.candidate, st.streak = top, -1, 0
        else:
            st.candidate, st.streak = -1, 0
        return st.label, st.probs

    def state(self, keys: Iterable[int]) -> dict[str, list]:
        """The states of tracks ``keys`` as plain JSON values (resume checkpoints): ``{key: [probs, label, time,
        candidate, streak]}``."""
        out = {}
        for key in keys:
            if (st := self._states.get(key)) is not None:
                out[str(key)] = [st.probs.tolist(), st.label, st.time, st.candidate, st.streak]
        return out

    def restore(self, state: dict[str, list]) -> None:
        """Continue from :meth:`state` (integer track keys)."""
        for key, (probs, label, time, candidate, streak) in state.items():
            self._states[int(key)] = _State(
                np.asarray(probs, np.float64), int(label), float(time), int(candidate), int(streak)
            )

    def fits(self, n_classes: int) -> bool:
        """Whether every restored state has ``n_classes`` finite probabilities."""
        return all(st.probs.shape == (n_classes,) and np.isfinite(st.probs).all() for st in self._states.values())

    def forget(self, key: object) -> None:
        """Drop a track's state (the face left the video)."""
        self._states.pop(key, None)


def count_switches(labels: Iterable[str | None]) -> int:
    """Number of label changes in a sequence (``None`` entries, frames without a face, are skipped)."""
    seq = [x for x in labels if x is not None]
    return sum(a != b for a, b in itertools.pairwise(seq))


def smooth_sequence(
    timestamps: Sequence[float], probs: np.ndarray, tau: float = 0.5, margin: float = 0.1, k: int = 3
) -> tuple[list[int], np.ndarray]:
    """Smooth a whole (T, C) probability sequence of one track; convenience wrapper around :class:`Smoother`."""
    sm = Smoother(tau, margin, k)
    out = [sm.update(0, t, p) for t, p in zip(timestamps, probs, strict=True)]
    return [o[0] for o in out], np.array([o[1] for o in out])
