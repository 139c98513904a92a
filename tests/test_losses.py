"""Imbalance tools: focal loss against hand-computed values, class weights, balanced sampling on FER2013's counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import CLASSES, FER

from ferkit.training.losses import (
    BalancedSampler,
    FocalLoss,
    class_counts,
    class_weights,
    focal_loss,
    make_loss,
    sample_weights,
)

LOGITS = [[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]]
TARGET = [0, 2]


def _softmax(row: list[float]) -> list[float]:
    z = sum(math.exp(v) for v in row)
    return [math.exp(v) / z for v in row]


def _fer_train_labels() -> np.ndarray:
    counts = [sum(1 for _ in (FER / "train" / c).iterdir()) for c in CLASSES]
    return np.repeat(np.arange(len(CLASSES)), counts)


def test_focal_loss_matches_hand_computed_values() -> None:
    # Sample 1: p_t = e^2 / (e^2 + e^1 + e^0.1) = 7.389056 / 11.212509 = 0.659001
    #           FL = (1 - 0.659001)^2 * -ln 0.659001 = 0.116280 * 0.417032 = 0.048492
    # Sample 2: p_t = e^-1 / (e^0.5 + e^2.5 + e^-1) = 0.367879 / 14.199094 = 0.025909
    #           FL = (1 - 0.025909)^2 * -ln 0.025909 = 0.948854 * 3.653150 = 3.466333
    p = [_softmax(r)[t] for r, t in zip(LOGITS, TARGET, strict=True)]
    assert p == pytest.approx([0.659001, 0.025909], abs=1e-6)
    fl = [-((1 - pt) ** 2) * math.log(pt) for pt in p]
    assert fl == pytest.approx([0.048492, 3.466333], abs=1e-6)
    logits, target = torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(TARGET)
    torch.testing.assert_close(focal_loss(logits, target, reduction="none"), torch.tensor(fl, dtype=torch.float64))
    # mean = (0.048492 + 3.466333) / 2 = 1.757412
    assert focal_loss(logits, target).item() == pytest.approx(1.757412, abs=1e-6)
    assert focal_loss(logits, target, reduction="sum").item() == pytest.approx(3.514825, abs=1e-6)
    # alpha = (0.25, 1, 2): weighted mean = (0.25 * 0.048492 + 2 * 3.466333) / (0.25 + 2) = 3.086573
    alpha = torch.tensor([0.25, 1.0, 2.0])
    assert focal_loss(logits, target, alpha=alpha).item() == pytest.approx(3.086573, abs=1e-6)
    assert FocalLoss(2.0, alpha)(logits, target).item() == pytest.approx(3.086573, abs=1e-6)


def test_focal_loss_with_label_smoothing_matches_hand_formula() -> None:
    eps, alpha = 0.1, [0.25, 1.0, 2.0]
    total, norm = 0.0, 0.0
    for row, t in zip(LOGITS, TARGET, strict=True):
        p = _softmax(row)
        q = [(1 - eps) * (c == t) + eps / 3 for c in range(3)]
        total += -sum(alpha[c] * q[c] * (1 - p[c]) ** 2 * math.log(p[c]) for c in range(3))
        norm += alpha[t]
    got = focal_loss(torch.tensor(LOGITS), torch.tensor(TARGET), 2.0, torch.tensor(alpha), label_smoothing=eps)
    assert got.item() == pytest.approx(total / norm, rel=1e-5)


def test_gamma_zero_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 7, generator=g) * 3
    target = torch.randint(0, 7, (64,), generator=g)
    w = class_weights([3995, 436, 4097, 7215, 4965, 4830, 3171], power=0.5)
    assert torch.equal(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))
    for alpha, eps in ((None, 0.1), (w, 0.0), (w, 0.1)):
        ref = F.cross_entropy(logits, target, weight=alpha, label_smoothing=eps)
        assert torch.equal(focal_loss(logits, target, 0.0, alpha, eps), ref)
        # the generic focal path agrees too as gamma -> 0
        torch.testing.assert_close(focal_loss(logits, target, 1e-9, alpha, eps), ref)
        if alpha is not None:
            assert torch.equal(make_loss("ce", alpha, 2.0, eps)(logits, target), ref)
    focal = make_loss("focal", w, 2.0, 0.1)
    assert torch.equal(focal(logits, target), focal_loss(logits, target, 2.0, w, 0.1))
    assert focal(logits, target) < make_loss("ce", w, 2.0, 0.1)(logits, target)  # easy samples are down-weighted
    with pytest.raises(ValueError, match="hinge"):
        make_loss("hinge", None, 2.0, 0.0)


def test_class_weights_inverse_effective_and_zero_counts() -> None:
    counts = [10, 30, 60]
    # inverse: N / n = (10, 3.333, 1.667), mean 5 -> (2, 2/3, 1/3)
    torch.testing.assert_close(class_weights(counts, "inverse"), torch.tensor([2.0, 2 / 3, 1 / 3]))
    raw = [math.sqrt(100 / n) for n in counts]  # power 0.5: (3.1623, 1.8257, 1.2910)
    expect = [v / (sum(raw) / 3) for v in raw]
    torch.testing.assert_close(class_weights(counts, "inverse", power=0.5), torch.tensor(expect))
    # effective, beta 0.9: (1 - 0.9) / (1 - 0.9^n) = (0.153534, 0.104426, 0.100180)
    raw = [0.1 / (1 - 0.9**n) for n in counts]
    assert raw == pytest.approx([0.153534, 0.104426, 0.100180], abs=1e-6)
    expect = [v / (sum(raw) / 3) for v in raw]
    torch.testing.assert_close(class_weights(counts, "effective", beta=0.9), torch.tensor(expect))
    for method in ("inverse", "effective"):
        assert class_weights(counts, method).mean().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(class_weights(counts, "none"), torch.ones(3))
    # a class without samples: weight 0, no division error; inverse (4, 0, 1.333) / 1.778 -> (2.25, 0, 0.75)
    torch.testing.assert_close(class_weights([10, 0, 30]), torch.tensor([2.25, 0.0, 0.75]))
    w = class_weights(torch.tensor([10, 0, 30]), "effective")
    assert w[1] == 0 and w.mean().item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="sqrt_inverse"):
        class_weights(counts, "sqrt_inverse")
    assert class_counts([0, 2, 2, 1, 2], 4).tolist() == [1, 1, 3, 0]
    with pytest.raises(ValueError):
        class_counts([0, 7], 7)


def test_balanced_sampler_on_fer2013_train() -> None:
    labels = _fer_train_labels()
    natural = np.bincount(labels) / len(labels)
    sampler = BalancedSampler(sample_weights(labels, power=1.0), None, seed=0)
    idx = sampler.epoch(0)
    freq = np.bincount(labels[idx], minlength=7) / len(idx)
    print(
        "natural",
        dict(zip(CLASSES, natural.round(4), strict=True)),
        "balanced",
        dict(zip(CLASSES, freq.round(4), strict=True)),
    )
    assert len(idx) == len(labels) == len(sampler)
    # every class, disgust (1.5 % of the data) included; sampling noise alone is about ±1.5 % (one sd) per class
    assert np.abs(freq / (1 / 7) - 1).max() < 0.06
    assert freq[CLASSES.index("disgust")] > 0.13
    plain = BalancedSampler(sample_weights(labels, power=0.0), None, seed=0).epoch(0)
    assert np.abs(np.bincount(labels[plain], minlength=7) / len(plain) - natural).max() < 0.01
    assert np.array_equal(sampler.epoch(3), BalancedSampler(sample_weights(labels), None, seed=0).epoch(3))
    assert not np.array_equal(sampler.epoch(3), sampler.epoch(4))
    assert not np.array_equal(sampler.epoch(3), BalancedSampler(sample_weights(labels), None, seed=1).epoch(3))
    assert len(BalancedSampler(sample_weights(labels), 1000, seed=0).epoch(0)) == 1000


def test_extra_weights_shift_a_source_share() -> None:
    labels = _fer_train_labels()
    source_a = np.zeros(len(labels), bool)
    for c in range(7):  # the first half of every class plays "source A", the rest "source B"
        pos = np.flatnonzero(labels == c)
        source_a[pos[: len(pos) // 2]] = True
    even = BalancedSampler(sample_weights(labels), None, seed=0).epoch(0)
    mixed = BalancedSampler(sample_weights(labels, extra=np.where(source_a, 3.0, 1.0)), None, seed=0).epoch(0)
    assert source_a[even].mean() == pytest.approx(0.5, abs=0.02)
    assert source_a[mixed].mean() == pytest.approx(0.75, abs=0.02)
    freq = np.bincount(labels[mixed], minlength=7) / len(mixed)
    assert np.abs(freq / (1 / 7) - 1).max() < 0.06  # class balance is kept
    w = sample_weights(labels, extra=np.where(source_a, 3.0, 1.0))
    assert w.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sample_weights(labels, extra=np.ones(3))
