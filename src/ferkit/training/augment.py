"""Batch augmentation for training on normalised ``(N, C, H, W)`` float tensors, in strength levels 0–3.

Every random draw comes from an explicit ``torch.Generator``, so a run (and its resume) is reproducible. Levels can
be given per sample (targeted augmentation: minority classes get a stronger level than the rest of the batch); the
samples of one level are transformed together (vectorised), and level-0 samples are returned bit-for-bit unchanged.

Level 2 with one level for the whole batch draws the same random numbers in the same order as the former
``augment`` of the first FER2013 trainer (commit 9bb1ec1) with its default strengths, and gives the same output.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentParams:
    """Declarative strengths; all zero (the default) is the identity.

    ``rotate_deg``: max absolute rotation; ``scale``/``shift``: max relative zoom and shift (fraction of half the
    image, as in ``affine_grid``); ``brightness``/``contrast``: max additive offset / relative gain on the normalised
    image; ``*_p``: probability per sample of flip, random erasing, GridMask and CoarseDropout.
    """

    flip_p: float = 0.0
    rotate_deg: float = 0.0
    scale: float = 0.0
    shift: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    erase_p: float = 0.0
    gridmask_p: float = 0.0
    coarse_dropout_p: float = 0.0

    @property
    def is_identity(self) -> bool:
        return not any(getattr(self, f) for f in self.__dataclass_fields__)


#: 0 none; 1 flip + small shift/scale; 2 + rotation ±10°, jitter, random erasing (the former train defaults);
#: 3 stronger affine and jitter + GridMask + CoarseDropout.
LEVELS: dict[int, AugmentParams] = {
    0: AugmentParams(),
    1: AugmentParams(flip_p=0.5, scale=0.05, shift=0.06),
    2: AugmentParams(flip_p=0.5, rotate_deg=10.0, scale=0.1, shift=0.12, brightness=0.25, contrast=0.25, erase_p=0.5),
    3: AugmentParams(
        flip_p=0.5,
        rotate_deg=15.0,
        scale=0.15,
        shift=0.15,
        brightness=0.35,
        contrast=0.35,
        erase_p=0.4,
        gridmask_p=0.3,
        coarse_dropout_p=0.4,
    ),
}


def scaled_levels(strength: float, levels: Mapping[int, AugmentParams] = LEVELS) -> dict[int, AugmentParams]:
    """``levels`` with every magnitude and probability except the flip's multiplied by ``strength`` (1 = as is)."""
    keep = {"flip_p"}
    return {
        lv: dataclasses.replace(a, **{f: getattr(a, f) * strength for f in a.__dataclass_fields__ if f not in keep})
        for lv, a in levels.items()
    }


def _rand(gen: torch.Generator, like: Tensor, *shape: int) -> Tensor:
    """Uniform [0, 1) draws from ``gen``, moved to ``like``'s device and dtype."""
    return torch.rand(*shape, generator=gen, device=gen.device).to(like)


def _selected(x: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Indices of the samples picked with probability ``p`` (one draw per sample)."""
    return torch.nonzero(torch.rand(x.shape[0], generator=gen, device=gen.device) < p).flatten().to(x.device)


def _fill_masked(
    x: Tensor, p: float, gen: torch.Generator, fill: float, mask: Callable[[int, int, int], Tensor]
) -> Tensor:
    """A copy of ``x`` in which, for the ``k`` samples picked with probability ``p``, the pixels where
    ``mask(k, H, W)`` (bool, (k, H, W)) is true get ``fill`` on every channel."""
    out = x.clone()
    sel = _selected(x, p, gen)
    if len(sel):
        drop = mask(len(sel), *x.shape[2:])
        out[sel] = torch.where(drop[:, None], torch.tensor(fill, dtype=x.dtype, device=x.device), out[sel])
    return out


def random_erasing(
    x: Tensor,
    p: float,
    gen: torch.Generator,
    area: tuple[float, float] = (0.02, 0.2),
    max_ratio: float = 3.0,
    value: float | None = None,
) -> Tensor:
    """Random erasing (Zhong et al. 2020): one box per picked sample, area a fraction of the image in ``area``,
    aspect ratio log-uniform in [1/max_ratio, max_ratio], filled with N(0, 1) noise (``value=None``) or ``value``."""
    out = x.clone()
    h, w = x.shape[2:]
    sel = _selected(x, p, gen)
    if not len(sel):
        return out
    # one vectorised draw for all picked samples (no per-sample host round trips: fast on a GPU too)
    r = torch.rand(len(sel), 4, generator=gen, device=gen.device).to(x.device, torch.float32)
    a = (area[0] + (area[1] - area[0]) * r[:, 0]) * h * w
    ratio = torch.exp((r[:, 1] * 2 - 1) * math.log(max_ratio))
    eh = torch.round(torch.sqrt(a * ratio)).clamp(max=h)
    ew = torch.round(torch.sqrt(a / ratio)).clamp(max=w)
    top = torch.floor(r[:, 2] * (h - eh + 1))[:, None, None]
    left = torch.floor(r[:, 3] * (w - ew + 1))[:, None, None]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    box = (ys >= top) & (ys < top + eh[:, None, None]) & (xs >= left) & (xs < left + ew[:, None, None])
    if value is None:
        fill = torch.randn(len(sel), 1, h, w, generator=gen, device=gen.device).to(x)
    else:
        fill = torch.tensor(value, dtype=x.dtype, device=x.device)
    out[sel] = torch.where(box[:, None], fill, out[sel])
    return out


def grid_mask(
    x: Tensor,
    p: float,
    gen: torch.Generator,
    period: tuple[int, int] | None = None,
    ratio: float | tuple[float, float] = (0.3, 0.5),
    rotate_deg: float = 0.0,
    fill: float = 0.0,
) -> Tensor:
    """GridMask (Chen et al. 2020): drop a regular grid of square patches from each picked sample.

    Per sample: integer period ``d`` uniform in ``period`` (pixels; default ``min(H, W) // 5 .. min(H, W) // 2``),
    patch side ``ratio * d`` (``ratio`` fixed or uniform in a range), random offset in [0, d) on each axis and a
    rotation uniform in ±``rotate_deg`` about the centre. The dropped share is ``ratio ** 2`` in expectation.
    Dropped pixels get ``fill`` (0 = the mean of normalised data) on all channels.
    """

    def mask(k: int, h: int, w: int) -> Tensor:
        s = min(h, w)
        lo, hi = period or (max(2, s // 5), max(2, s // 2))
        r_lo, r_hi = (ratio, ratio) if isinstance(ratio, (int, float)) else ratio
        d = torch.randint(lo, hi + 1, (k,), generator=gen, device=gen.device).to(x.device, torch.float32)
        r = r_lo + (r_hi - r_lo) * _rand(gen, x, k)
        off = _rand(gen, x, k, 2) * d[:, None]
        ang = (_rand(gen, x, k) * 2 - 1) * math.radians(rotate_deg)
        ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5 - h / 2
        xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5 - w / 2
        dd, side = d[:, None, None], (r * d)[:, None, None]
        if rotate_deg == 0:  # separable: (row in a band) & (column in a band)
            in_x = torch.remainder(xs[None, None, :] + off[:, 0, None, None], dd) < side  # (k, 1, W)
            in_y = torch.remainder(ys[None, :, None] + off[:, 1, None, None], dd) < side  # (k, H, 1)
            return in_y & in_x
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        cos, sin = torch.cos(ang)[:, None, None], torch.sin(ang)[:, None, None]
        u = cos * xx + sin * yy + off[:, 0, None, None]
        v = -sin * xx + cos * yy + off[:, 1, None, None]
        return (torch.remainder(u, dd) < side) & (torch.remainder(v, dd) < side)

    return _fill_masked(x, p, gen, fill, mask)


def coarse_dropout(
    x: Tensor,
    p: float,
    gen: torch.Generator,
    holes: tuple[int, int] = (1, 8),
    size: tuple[float, float] = (0.08, 0.2),
    fill: float = 0.0,
) -> Tensor:
    """CoarseDropout: in each picked sample, a count uniform in ``holes`` of rectangles with height and width each
    uniform in ``size`` (fraction of the image side, at least 1 px) filled with ``fill`` (0 = the normalised mean)."""
    m = holes[1]

    def mask(k: int, h: int, w: int) -> Tensor:
        count = torch.randint(holes[0], m + 1, (k,), generator=gen, device=gen.device).to(x.device)
        hh = ((size[0] + (size[1] - size[0]) * _rand(gen, x, k, m)) * h).round().clamp(1, h)
        ww = ((size[0] + (size[1] - size[0]) * _rand(gen, x, k, m)) * w).round().clamp(1, w)
        top = (_rand(gen, x, k, m) * (h - hh + 1)).floor()
        left = (_rand(gen, x, k, m) * (w - ww + 1)).floor()
        active = torch.arange(m, device=x.device) < count[:, None]
        ys = torch.arange(h, device=x.device)
        xs = torch.arange(w, device=x.device)
        in_y = (ys >= top[..., None]) & (ys < (top + hh)[..., None]) & active[..., None]  # (k, m, H)
        in_x = (xs >= left[..., None]) & (xs < (left + ww)[..., None])  # (k, m, W)
        return torch.bmm(in_y.transpose(1, 2).float(), in_x.float()) > 0  # (k, H, W): covered by an active hole

    return _fill_masked(x, p, gen, fill, mask)


def _apply(x: Tensor, a: AugmentParams, gen: torch.Generator) -> Tensor:
    """All transforms of one strength set on the whole of ``x``; stages with zero strength draw nothing."""
    if a.is_identity:
        return x.clone()
    n = x.shape[0]
    if a.flip_p > 0:
        x = torch.where(_rand(gen, x, n, 1, 1, 1) < a.flip_p, x.flip(3), x)
    if a.rotate_deg > 0 or a.scale > 0 or a.shift > 0:
        ang = (_rand(gen, x, n) * 2 - 1) * math.radians(a.rotate_deg)
        sc = 1 + (_rand(gen, x, n) * 2 - 1) * a.scale
        theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang) / sc, -torch.sin(ang) / sc
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang) / sc, torch.cos(ang) / sc
        theta[:, :, 2] = (_rand(gen, x, n, 2) * 2 - 1) * a.shift
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    if a.brightness > 0 or a.contrast > 0:
        gain = 1 + (_rand(gen, x, n, 1, 1, 1) * 2 - 1) * a.contrast
        x = x * gain + (_rand(gen, x, n, 1, 1, 1) * 2 - 1) * a.brightness
    if a.erase_p > 0:
        x = random_erasing(x, a.erase_p, gen)
    if a.gridmask_p > 0:
        x = grid_mask(x, a.gridmask_p, gen)
    if a.coarse_dropout_p > 0:
        x = coarse_dropout(x, a.coarse_dropout_p, gen)
    return x  # every active stage above returns a new tensor


def augment_batch(
    x: Tensor, levels: int | Sequence[int] | Tensor, gen: torch.Generator, params: Mapping[int, AugmentParams] = LEVELS
) -> Tensor:
    """Augment a normalised ``(N, C, H, W)`` batch at one level for all (``int``) or one level per sample (``(N,)``
    int tensor). Levels are processed in ascending order, each group vectorised; returns a new tensor."""
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if isinstance(levels, (int, np.integer)) or (isinstance(levels, Tensor) and levels.ndim == 0):
        level = int(levels)
        if level not in params:
            raise ValueError(f"unknown augmentation level {level}; known: {sorted(params)}")
        return _apply(x, params[level], gen)
    levels = torch.as_tensor(levels).to(x.device)
    if levels.shape != (x.shape[0],):
        raise ValueError(f"levels must have shape ({x.shape[0]},), got {tuple(levels.shape)}")
    out = x.clone()
    for level in torch.unique(levels).tolist():
        if level not in params:
            raise ValueError(f"unknown augmentation level {level}; known: {sorted(params)}")
        if params[level].is_identity:
            continue
        idx = torch.nonzero(levels == level).flatten()
        out[idx] = _apply(x[idx], params[level], gen)
    return out


def sample_levels(labels: Tensor, base_level: int, boosted: Sequence[int], boosted_level: int) -> Tensor:
    """Per-sample levels: ``boosted_level`` where the label is one of the class indices in ``boosted``, else
    ``base_level`` (int64, on ``labels``' device)."""
    labels = torch.as_tensor(labels)
    hit = torch.isin(labels, torch.as_tensor(list(boosted), dtype=labels.dtype, device=labels.device))
    return torch.where(hit, boosted_level, base_level).to(torch.int64)


def minority_classes(counts: Sequence[int], rule: str = "below_median") -> list[int]:
    """Indices of the classes whose count is strictly below the median (``"below_median"``) or the mean
    (``"below_mean"``) of the class counts."""
    c = np.asarray(counts, dtype=np.float64)
    if rule == "below_median":
        cut = float(np.median(c))
    elif rule == "below_mean":
        cut = float(c.mean())
    else:
        raise ValueError(f"unknown minority rule {rule!r}; use 'below_median' or 'below_mean'")
    return [i for i, v in enumerate(c) if v < cut]
