"""Class-imbalance tools for training: class weights, focal loss, balanced sampling weights, a reproducible sampler."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHT_METHODS = ("none", "inverse", "effective")
LOSS_KINDS = ("ce", "focal")


def class_counts(labels: Sequence[int] | Tensor | np.ndarray, num_classes: int) -> Tensor:
    """Number of samples of each class (int64, length ``num_classes``)."""
    t = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels).long().flatten()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(t.min())}, {int(t.max())}]")
    return torch.bincount(t, minlength=num_classes)


def class_weights(
    counts: Sequence[int] | Tensor | np.ndarray, method: str = "inverse", power: float = 1.0, beta: float = 0.999
) -> Tensor:
    """Per-class loss weights (float32), normalised so that their mean over all classes is 1.

    ``"none"``: ones. ``"inverse"``: ``(N / n_c) ** power``. ``"effective"``: the inverse effective number of
    samples (Cui et al. 2019), ``((1 - beta) / (1 - beta ** n_c)) ** power`` (``power`` 1 is the paper's weight).
    Classes with no sample get weight 0 (they never occur as a target); all-zero counts give all-zero weights.
    """
    n = torch.as_tensor(np.asarray(counts) if not isinstance(counts, Tensor) else counts).to(torch.float64).flatten()
    if (n < 0).any():
        raise ValueError(f"class counts must be non-negative, got {n.tolist()}")
    if method == "none":
        return torch.ones(len(n), dtype=torch.float32)
    present = n > 0
    safe = torch.where(present, n, torch.ones_like(n))
    if method == "inverse":
        w = (n.sum() / safe) ** power
    elif method == "effective":
        if not 0 <= beta < 1:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        w = ((1 - beta) / (1 - beta**safe)) ** power
    else:
        raise ValueError(f"unknown class weight method {method!r}; use one of {WEIGHT_METHODS}")
    w = torch.where(present, w, torch.zeros_like(w))
    total = w.sum()
    return (w * len(w) / total if total > 0 else w).to(torch.float32)


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    """Focal loss (Lin et al. 2017) on ``(N, C)`` logits and ``(N,)`` class-index targets.

    Without smoothing, ``FL_i = -alpha_t (1 - p_t) ** gamma * log p_t`` with ``t`` the target class. With label
    smoothing ``eps``, the one-hot target becomes ``q = (1 - eps) * onehot + eps / C`` and the loss is summed over
    all classes: ``FL_i = -sum_c alpha_c q_c (1 - p_c) ** gamma * log p_c`` (each class term is focused by its own
    probability). ``"mean"`` divides the sum by ``sum_i alpha_{t_i}`` (by N without ``alpha``), as
    ``F.cross_entropy`` does with ``weight``; ``"sum"`` and ``"none"`` as usual. ``gamma=0`` is computed by
    ``F.cross_entropy`` itself (``weight=alpha``, same smoothing), so it matches it exactly.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; use 'mean', 'sum' or 'none'")
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    a = alpha.to(logits) if alpha is not None else None
    if gamma == 0:
        return F.cross_entropy(logits, target, weight=a, label_smoothing=label_smoothing, reduction=reduction)
    logp = F.log_softmax(logits, dim=1)
    focus = (1 - logp.exp()).clamp_min(0) ** gamma
    if label_smoothing == 0:
        t = target[:, None]
        loss = -(focus.gather(1, t) * logp.gather(1, t)).squeeze(1)
        if a is not None:
            loss = loss * a[target]
    else:
        c = logits.shape[1]
        q = torch.full_like(logp, label_smoothing / c).scatter_add_(
            1, target[:, None], torch.full_like(logp[:, :1], 1 - label_smoothing)
        )
        terms = q * focus * logp
        loss = -(terms * a if a is not None else terms).sum(1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (a[target].sum() if a is not None else loss.new_tensor(len(loss)))


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`; ``alpha`` is a buffer (moves with ``.to(device)``)."""

    alpha: Tensor | None

    def __init__(
        self, gamma: float = 2.0, alpha: Tensor | None = None, label_smoothing: float = 0.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        self.gamma, self.label_smoothing, self.reduction = gamma, label_smoothing, reduction
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.label_smoothing, self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, label_smoothing={self.label_smoothing}, reduction={self.reduction!r}"


def make_loss(
    kind: str, weights: Tensor | None = None, gamma: float = 2.0, label_smoothing: float = 0.0
) -> Callable[[Tensor, Tensor], Tensor]:
    """The training criterion as a module: ``"ce"`` → ``nn.CrossEntropyLoss(weight=weights, label_smoothing=...)``
    (``gamma`` unused); ``"focal"`` → :class:`FocalLoss` with ``alpha=weights``. Both use the weighted mean."""
    if kind == "ce":
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)
    if kind == "focal":
        return FocalLoss(gamma=gamma, alpha=weights, label_smoothing=label_smoothing)
    raise ValueError(f"unknown loss kind {kind!r}; use one of {LOSS_KINDS}")


def sample_weights(
    labels: Sequence[int] | Tensor | np.ndarray, power: float = 1.0, extra: np.ndarray | None = None
) -> np.ndarray:
    """Per-sample draw probabilities ∝ ``(1 / n_c) ** power`` × ``extra`` (optional per-sample weights, e.g. per-source
    mixing weights), summing to 1. ``power`` 1 draws each class equally often (without ``extra``), 0 keeps the natural
    class frequencies."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64).ravel()
    if y.size == 0:
        raise ValueError("no labels")
    if y.min() < 0:
        raise ValueError(f"labels must be non-negative, got {y.min()}")
    counts = np.bincount(y).astype(np.float64)
    w = (1.0 / counts[y]) ** power
    if extra is not None:
        e = np.asarray(extra, dtype=np.float64).ravel()
        if e.shape != w.shape:
            raise ValueError(f"extra weights must have one value per sample ({w.size}), got {e.size}")
        if (e < 0).any() or not np.isfinite(e).all():
            raise ValueError("extra weights must be finite and non-negative")
        w = w * e
    total = w.sum()
    if not total > 0:
        raise ValueError("all sample weights are zero")
    return w / total


class BalancedSampler:
    """Indices for one training epoch, drawn with replacement ∝ ``weights``; the same ``(seed, epoch)`` gives the same
    indices (so a resumed run draws what the uninterrupted one would), independent of any global RNG state."""

    def __init__(self, weights: np.ndarray, num_samples: int | None = None, seed: int = 0) -> None:
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.size == 0 or (w < 0).any() or not np.isfinite(w).all() or not w.sum() > 0:
            raise ValueError("weights must be non-empty, finite, non-negative and not all zero")
        self.p = w / w.sum()
        self.num_samples = len(w) if num_samples is None else int(num_samples)
        if self.num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def epoch(self, epoch: int) -> np.ndarray:
        """The ``num_samples`` int64 indices of ``epoch`` (a NumPy generator seeded with ``[seed, epoch]``)."""
        rng = np.random.default_rng([self.seed, epoch])
        return rng.choice(len(self.p), size=self.num_samples, replace=True, p=self.p).astype(np.int64)
