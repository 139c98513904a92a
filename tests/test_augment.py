"""Batch augmentation levels, per-sample (targeted) levels, GridMask/CoarseDropout, minority classes on FER2013."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import CLASSES, FER, fer_files

from ferkit.training.augment import (
    LEVELS,
    AugmentParams,
    augment_batch,
    coarse_dropout,
    grid_mask,
    minority_classes,
    random_erasing,
    sample_levels,
)


def _batch(per_class: int = 4, channels: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Real FER2013 train crops, normalised as in training: (pixel / 255 - 0.5) / 0.5 (never exactly 0)."""
    imgs = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer_files("train", per_class)])
    x = (torch.from_numpy(imgs).to(dtype) / 255 - 0.5) / 0.5
    return x[:, None].repeat(1, channels, 1, 1)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_level_zero_is_identity() -> None:
    x = _batch()
    y = augment_batch(x, 0, _gen())
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    assert LEVELS[0] == AugmentParams() and LEVELS[0].is_identity
    assert torch.equal(augment_batch(x, torch.zeros(len(x), dtype=torch.long), _gen()), x)


def test_same_seed_same_output_different_seed_different() -> None:
    x = _batch()
    for level in (1, 2, 3):
        a, b, c = (augment_batch(x, level, _gen(s)) for s in (7, 7, 8))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
        assert not torch.equal(a, x)
    levels = torch.tensor([0, 1, 2, 3] * (len(x) // 4))
    assert torch.equal(augment_batch(x, levels, _gen(1)), augment_batch(x, levels, _gen(1)))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_kept(channels: int, dtype: torch.dtype) -> None:
    x = _batch(2, channels, dtype)
    for level in (1, 2, 3):
        y = augment_batch(x, level, _gen(level))
        assert y.shape == x.shape and y.dtype == dtype and torch.isfinite(y).all()
    for f in (random_erasing, grid_mask, coarse_dropout):
        y = f(x, 1.0, _gen())
        assert y.shape == x.shape and y.dtype == dtype and not torch.equal(y, x)


def test_grid_mask_drops_the_expected_share() -> None:
    x = _batch(10)  # 70 images
    y = grid_mask(x, 1.0, _gen(), ratio=0.5)
    share = (y == 0).double().mean().item()
    print(f"GridMask ratio 0.5: zeroed share {share:.3f} (expected 0.25)")
    assert share == pytest.approx(0.25, abs=0.03)
    assert ((y == 0).flatten(1).any(1)).all()  # every image got a grid
    assert torch.equal(y[y != 0], x[y != 0])  # nothing else changed
    rotated = grid_mask(x, 1.0, _gen(), ratio=0.5, rotate_deg=45)
    assert (rotated == 0).double().mean().item() == pytest.approx(0.25, abs=0.04)
    default = (grid_mask(x, 1.0, _gen()) == 0).double().mean().item()  # ratio uniform in [0.3, 0.5]
    assert default == pytest.approx((0.5**3 - 0.3**3) / 3 / 0.2, abs=0.03)  # E[r^2] = 0.163
    assert torch.equal(grid_mask(x, 0.0, _gen()), x)


def test_coarse_dropout_makes_rectangular_holes() -> None:
    x = _batch(4)
    y = coarse_dropout(x, 1.0, _gen())
    for img in (y[:, 0] == 0).numpy():
        n = cv2.connectedComponents(img.astype(np.uint8), connectivity=4)[0] - 1
        assert img.sum() > 0 and 1 <= n <= 8  # 1-8 holes (overlapping ones merge)
    holes = (y == 0).double().mean().item()
    print(f"CoarseDropout: zeroed share {holes:.3f}")
    assert 0.005 < holes < 0.3
    assert torch.equal(y[y != 0], x[y != 0])
    one = coarse_dropout(x, 1.0, _gen(), holes=(1, 1), size=(0.1, 0.2))
    for img in (one[:, 0] == 0).numpy():  # a single hole: one filled axis-aligned rectangle, 5-10 px a side
        n, _, stats, _ = cv2.connectedComponentsWithStats(img.astype(np.uint8), connectivity=4)
        _, _, w, h, area = stats[1]
        assert n == 2 and area == w * h and 5 <= w <= 10 and 5 <= h <= 10
    assert torch.equal(coarse_dropout(x, 0.0, _gen()), x)


def test_random_erasing_alone() -> None:
    x = _batch(2)
    y = random_erasing(x, 1.0, _gen(), value=0.0)
    assert ((y == 0).flatten(1).any(1)).all()
    assert torch.equal(random_erasing(x, 0.0, _gen()), x)


def test_per_sample_levels_leave_level_zero_rows_unchanged() -> None:
    x = _batch(1)[:4]
    y = augment_batch(x, torch.tensor([0, 3, 0, 3]), _gen())
    assert torch.equal(y[0], x[0]) and torch.equal(y[2], x[2])
    assert not torch.equal(y[1], x[1]) and not torch.equal(y[3], x[3])
    with pytest.raises(ValueError, match="level 5"):
        augment_batch(x, torch.tensor([0, 5, 0, 3]), _gen())
    with pytest.raises(ValueError, match="shape"):
        augment_batch(x, torch.tensor([0, 3]), _gen())


def test_minority_classes_and_sample_levels_on_fer2013_train() -> None:
    counts = [sum(1 for _ in (FER / "train" / c).iterdir()) for c in CLASSES]
    by_median = minority_classes(counts)
    by_mean = minority_classes(counts, "below_mean")
    print("counts", dict(zip(CLASSES, counts, strict=True)))
    print("below_median", [CLASSES[i] for i in by_median], "below_mean", [CLASSES[i] for i in by_mean])
    smallest = np.argsort(counts)[:3].tolist()  # disgust, surprise, angry
    assert CLASSES.index("disgust") in by_median and sorted(by_median) == sorted(smallest)
    assert set(by_median) <= set(by_mean) and CLASSES.index("happy") not in by_mean
    with pytest.raises(ValueError, match="below_mode"):
        minority_classes(counts, "below_mode")
    labels = torch.arange(7).repeat(2)
    levels = sample_levels(labels, 1, by_median, 3)
    assert levels.dtype == torch.int64
    assert levels.tolist() == [3 if c in by_median else 1 for c in labels.tolist()]
    x = _batch(2)  # fer_files order: 2 per class, classes in CLASSES order
    y = augment_batch(x, sample_levels(torch.arange(7).repeat_interleave(2), 0, by_median, 3), _gen())
    for i in range(len(x)):
        assert torch.equal(y[i], x[i]) == (i // 2 not in by_median)
