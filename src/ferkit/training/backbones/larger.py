"""Larger backbones for 48–64 px faces, registered in :data:`ferkit.training.backbones.base.BACKBONES` on import.

``resnet18_small`` (ResNet-18 with a stride-1 stem and no max-pool), ``mobilenetv3_small`` (MobileNetV3-Small with a
stride-1 stem and first block, total stride 8) and ``attention_ensemble`` (member backbones' embeddings projected to
a common size and fused by per-sample softmax attention weights). Like every backbone they are ``Classifier``-shaped:
``.features`` maps images to an embedding, ``.head`` is one linear layer, ``forward`` returns ``(logits, embedding)``.
Imported by the package ``ferkit.training.backbones``; import that, not this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ferkit.training.backbones.base import Classifier, create_backbone, register_backbone


def _divisible(v: float, d: int = 8) -> int:
    """Round a channel count to a multiple of ``d`` without going below 90 % of it (the MobileNet rule)."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


# ---------------------------------------------------------------------------------------------------- ResNet-18


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv-BN projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.bn2.weight)  # each residual branch starts as identity (Goyal et al. 2017)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


@register_backbone("resnet18_small")
def resnet18_small(
    num_classes: int = 7,
    in_channels: int = 1,
    dropout: float = 0.2,
    width: float = 1.0,
    blocks: Sequence[int] = (2, 2, 2, 2),
) -> Classifier:
    """ResNet-18 (BasicBlock × [2, 2, 2, 2], widths 64-128-256-512 × ``width``) for small faces.

    The stem is one 3×3 stride-1 conv with no max-pool, so the stages run at 1, 1/2, 1/4 and 1/8 of the input
    (48 px → 6 px). About 11.2 M parameters at ``width=1``, 2.8 M at ``width=0.5``.
    """
    widths = [max(8, round(c * width)) for c in (64, 128, 256, 512)]
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    ]
    cin = widths[0]
    for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
        stage = [BasicBlock(cin if j == 0 else w, w, 2 if i and j == 0 else 1) for j in range(n)]
        layers.append(nn.Sequential(*stage))
        cin = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    features = nn.Sequential(*layers)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return Classifier(features, cin, num_classes, dropout)


# ---------------------------------------------------------------------------------------------- MobileNetV3-Small


class SqueezeExcite(nn.Module):
    """Channel attention: global average → 1×1 conv → ReLU → 1×1 conv → hard-sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.relu(self.fc1(s))))


def _conv_bn_act(
    cin: int, cout: int, k: int, stride: int, act: type[nn.Module] | None, groups: int = 1
) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return [*layers, act()] if act is not None else layers


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1×1 expand → k×k depthwise → optional SE → 1×1 project, residual when shapes match."""

    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: type[nn.Module], stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [] if exp == cin else _conv_bn_act(cin, exp, 1, 1, act)
        layers += _conv_bn_act(exp, exp, k, stride, act, groups=exp)
        if se:
            layers.append(SqueezeExcite(exp, _divisible(exp / 4)))
        layers += _conv_bn_act(exp, cout, 1, 1, None)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


# (kernel, expansion, out, squeeze-excite, hard-swish, stride) of MobileNetV3-Small (Howard et al. 2019, table 2)
MBV3_SMALL = [
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
]


@register_backbone("mobilenetv3_small")
def mobilenetv3_small(
    num_classes: int = 7,
    in_channels: int = 1,
    dropout: float = 0.2,
    width: float = 1.0,
    embedding_dim: int = 1024,
) -> Classifier:
    """MobileNetV3-Small with the stem and the first block at stride 1: total stride 8 (48 px → 6 px).

    Blocks as in the paper (depthwise convs, squeeze-excitation, hard-swish), then a 1×1 conv to 576 × ``width``,
    global average pool and a linear + hard-swish to ``embedding_dim`` (the embedding; 0 keeps the pooled 576).
    About 1.5 M parameters at ``width=1``.
    """
    stem = _divisible(16 * width)
    layers = _conv_bn_act(in_channels, stem, 3, 1, nn.Hardswish)
    cin = stem
    for i, (k, exp, out, se, hs, stride) in enumerate(MBV3_SMALL):
        cout = _divisible(out * width)
        act = nn.Hardswish if hs else nn.ReLU
        layers.append(InvertedResidual(cin, k, _divisible(exp * width), cout, se, act, 1 if i == 0 else stride))
        cin = cout
    last = _divisible(576 * width)
    layers += [*_conv_bn_act(cin, last, 1, 1, nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if embedding_dim:
        layers += [nn.Linear(last, embedding_dim), nn.Hardswish()]
        last = embedding_dim
    features = nn.Sequential(*layers)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return Classifier(features, last, num_classes, dropout)


# --------------------------------------------------------------------------------------------- attention ensemble


class AttentionFusion(nn.Module):
    """Member feature extractors, each projected to ``dim`` (linear + LayerNorm), fused by softmax attention.

    ``forward`` returns the fused embedding ``Σ_i w_i · proj_i`` where ``w = softmax(MLP(concat(proj)))`` per
    sample; the weights of the last call are kept (detached) in ``last_weights``, shape ``(N, members)``.
    """

    def __init__(self, features: Sequence[nn.Module], dims: Sequence[int], dim: int, hidden: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(features)
        self.proj = nn.ModuleList(nn.Sequential(nn.Linear(d, dim), nn.LayerNorm(dim)) for d in dims)
        n = len(self.members)
        self.score = nn.Sequential(nn.Linear(n * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n))
        self.last_weights: torch.Tensor | None = None

    def weights_and_fused(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        projs = [p(f(x)) for f, p in zip(self.members, self.proj, strict=True)]
        w = torch.softmax(self.score(torch.cat(projs, 1)), dim=1)
        fused = (w.unsqueeze(2) * torch.stack(projs, 1)).sum(1)
        return w, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, fused = self.weights_and_fused(x)
        self.last_weights = w.detach()
        return fused


class AttentionEnsemble(Classifier):
    """``Classifier`` whose ``.features`` is an :class:`AttentionFusion`; adds ``attention(x)`` and ``last_weights``."""

    features: AttentionFusion

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample member weights ``(N, members)`` (each row sums to 1) for an image batch."""
        return self.features.weights_and_fused(x)[0]

    @property
    def last_weights(self) -> torch.Tensor | None:
        """Attention weights of the last forward pass (detached), or ``None`` before the first one."""
        return self.features.last_weights


def _member_features(path: str | Path) -> dict[str, torch.Tensor]:
    ck = torch.load(path, weights_only=True)
    state = ck.get("model", ck)
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


@register_backbone("attention_ensemble")
def attention_ensemble(
    num_classes: int = 7,
    in_channels: int = 1,
    dropout: float = 0.2,
    members: Sequence[str] = ("vgg_small", "resnet18_small"),
    dim: int = 256,
    hidden: int = 128,
    member_kwargs: Sequence[dict | None] | None = None,
    member_weights: Sequence[str | Path | None] | None = None,
) -> AttentionEnsemble:
    """Ensemble of registered backbones fused by learned per-sample attention weights over members.

    Each member is built through the registry (``create_backbone(name, num_classes=..., in_channels=...,
    **member_kwargs[i])``; unknown names raise its ``KeyError``) and only its ``.features`` are kept.
    ``member_weights[i]``, if given, is a checkpoint (``best.pt`` of ``ferkit.training.loop``: ``{"model":
    state_dict}``)
    whose ``features.*`` tensors initialise that member (strictly: the architecture must match).
    """
    members = list(members)
    if not members:
        raise ValueError("attention_ensemble needs at least one member")
    kwargs = list(member_kwargs) if member_kwargs is not None else [None] * len(members)
    paths = list(member_weights) if member_weights is not None else [None] * len(members)
    if len(kwargs) != len(members) or len(paths) != len(members):
        raise ValueError("member_kwargs and member_weights need one entry per member")
    feats, dims = [], []
    for name, kw, path in zip(members, kwargs, paths, strict=True):
        m = create_backbone(name, num_classes=num_classes, in_channels=in_channels, **(kw or {}))
        if path is not None:
            m.features.load_state_dict(_member_features(path))
        feats.append(m.features)
        dims.append(m.head.in_features)
    return AttentionEnsemble(AttentionFusion(feats, dims, dim, hidden), dim, num_classes, dropout)
