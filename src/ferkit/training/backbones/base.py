"""Plain-torch backbones for small (48–64 px) face crops, behind a registry.

Every backbone is a ``features`` module that maps an image batch to an embedding and a separate ``head``
(a single linear layer), so fusion and bias tuning can work on features or logits without retraining.
Needs the ``train`` extra (torch); inference never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from ferkit.errors import InputError

if TYPE_CHECKING:
    from ferkit.training.config import RunConfig

BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a backbone factory under ``name``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        BACKBONES[name] = fn
        return fn

    return wrap


def create_backbone(name: str, **kwargs: object) -> nn.Module:
    """Build a registered backbone; raises ``KeyError`` naming the known ones."""
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


def configured_backbone(cfg: RunConfig, num_classes: int) -> nn.Module:
    """``cfg``'s backbone (``model.options`` passed through), untrained; ``InputError`` naming the key it refuses."""
    m, in_channels = cfg.model, 1 if cfg.data.channels == "gray" else 3
    try:
        return create_backbone(
            m.backbone, num_classes=num_classes, in_channels=in_channels, dropout=m.dropout, **m.options
        )
    except KeyError as exc:
        raise InputError(f"model.backbone: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"model.options: {exc}") from exc


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Classifier(nn.Module):
    """Features + separable linear head; ``forward`` returns ``(logits, embedding)``."""

    def __init__(self, features: nn.Module, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.features = features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.features(x)
        return self.head(self.dropout(emb)), emb


@register_backbone("vgg_small")
def vgg_small(
    num_classes: int = 7,
    in_channels: int = 1,
    widths: tuple[tuple[int, ...], ...] = ((32,), (64, 64), (128, 128), (256, 256)),
    dropout: float = 0.4,
) -> Classifier:
    """VGG-style net: one cheap conv at full resolution, then pairs of 3×3 convs per stage, global average pool.

    The single full-resolution conv keeps CPU inference fast (~800 crops/s at 48×48 with onnxruntime on 2 cores).
    """
    layers: list[nn.Module] = []
    cin = in_channels
    for i, stage in enumerate(widths):
        if i:
            layers.append(nn.MaxPool2d(2))
        for w in stage:
            layers.append(_conv(cin, w))
            cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), cin, num_classes, dropout)


def param_groups(
    model: nn.Module, lr: float, head_lr_mult: float = 1.0, weight_decay: float = 5e-4
) -> list[dict[str, object]]:
    """Optimiser parameter groups: backbone vs ``model.head`` (at ``lr * head_lr_mult``), each split into
    decayed weights and undecayed norm/bias parameters (every tensor with fewer than 2 dimensions).

    Every trainable parameter lands in exactly one group; empty groups are left out. Each group carries a
    ``name`` (``backbone``, ``backbone_no_decay``, ``head``, ``head_no_decay``), which torch optimisers keep.
    """
    head_ids = {id(p) for p in model.head.parameters()}
    groups: dict[str, list[nn.Parameter]] = {"backbone": [], "backbone_no_decay": [], "head": [], "head_no_decay": []}
    seen: set[int] = set()
    for p in model.parameters():  # parameters() already deduplicates shared tensors
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        part = "head" if id(p) in head_ids else "backbone"
        groups[part if p.ndim > 1 else f"{part}_no_decay"].append(p)
    return [
        {
            "name": name,
            "params": params,
            "lr": lr * (head_lr_mult if name.startswith("head") else 1.0),
            "weight_decay": 0.0 if name.endswith("no_decay") else weight_decay,
        }
        for name, params in groups.items()
        if params
    ]
