"""Start training from an ONNX model folder (``model.init_from = "ferkit"``): its weights back as a torch state dict.

Supported: ``vgg_small`` folders exported by ferkit (batch norm folded into each convolution). A folded convolution
``y = W·x + b`` becomes conv ``W`` (no bias) + batch norm with running mean μ, variance σ² − ε, weight σ and bias
μ + b, where μ and σ are the per-channel statistics of ``W·x`` on a batch of training images: eval mode reproduces
the ONNX outputs exactly, and train mode starts from the same function on data-like batches (a warm start).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ferkit.errors import InputError


def model_folder(ref: str) -> Path | None:
    """The model folder a registered name (``ferkit``) or a path names, or None if ``ref`` is no model folder."""
    from ferkit.models.loading import MODEL_FOLDERS

    folder = MODEL_FOLDERS.get(ref, Path(ref))
    return folder if (folder / "card.json").is_file() else None


def checked_folder(folder: Path) -> Path:
    """The ONNX file of a ``vgg_small`` model folder, its card checked key by key and its weights by their SHA-256
    (a one-line ``ModelError`` or ``InputError`` otherwise)."""
    from ferkit.models.base import OnnxModel

    card = OnnxModel(folder).card
    arch = card.extra.get("architecture")
    backbone = arch.get("backbone") if isinstance(arch, dict) else None
    if backbone != "vgg_small":
        kind = backbone or "non-ferkit"
        raise InputError(f"model.init_from: {folder} is a {kind} model; only vgg_small model folders load")
    return folder / card.onnx_file


def state_from_onnx(
    folder: Path, model: nn.Module, x: torch.Tensor, classes: list[str] | None = None
) -> dict[str, torch.Tensor]:
    """``model``'s state dict filled from ``folder``'s ONNX weights, batch norms fitted on ``x`` (normalised NCHW).

    ``classes``: the new model's class names. When they include every class of the folder's model (a wider
    taxonomy, e.g. basic7 → extended12), the head rows are copied by class name and the new classes keep their fresh
    weights (scaled down) with a bias below every old one, so training starts from the old model's decisions.
    ``InputError`` when the folder's network is not ``model``'s (another backbone, input or class count).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(checked_folder(folder))).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    layers = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    folded = all(len(n.input) > 2 and n.input[1] in init and n.input[2] in init for n in convs)
    shapes = [tuple(init[n.input[1]].shape) for n in convs] if folded else None
    head = init.get("head.weight"), init.get("head.bias")
    rows = _head_rows(folder, classes, model.head.weight.shape[0])
    if (
        shapes != [tuple(c.weight.shape) for c in layers]
        or head[0] is None
        or head[1] is None
        or rows is None
        or tuple(head[0].shape) != (len(rows), model.head.weight.shape[1])
    ):
        raise InputError(
            f"model.init_from: {folder} does not fit this model (layers, input channels or classes differ)"
        )
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for conv, bn, node in zip(layers, norms, convs, strict=True):  # identity norms: eval mode = the folded graph
            conv.weight.copy_(torch.from_numpy(init[node.input[1]].copy()))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(init[node.input[2]].copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        old_w, old_b = torch.from_numpy(init["head.weight"].copy()), torch.from_numpy(init["head.bias"].copy())
        model.head.weight.mul_(0.1)
        model.head.bias.fill_(float(old_b.min()) - 2.0)
        model.head.weight[rows] = old_w
        model.head.bias[rows] = old_b
        stats: list[torch.Tensor] = []
        hooks = [c.register_forward_hook(lambda m, i, o: stats.append(o.transpose(0, 1).flatten(1))) for c in layers]
        model(x)
        for h in hooks:
            h.remove()
        for bn, y in zip(norms, stats, strict=True):  # the data's statistics: the same eval-mode function
            mu, var = y.mean(1), y.var(1, unbiased=False).clamp_min(2 * bn.eps)
            bias = bn.bias.clone()
            bn.running_mean.copy_(mu)
            bn.running_var.copy_(var - bn.eps)
            bn.weight.copy_(var.sqrt())
            bn.bias.copy_(mu + bias)
    model.train(was_training)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _head_rows(folder: Path, classes: list[str] | None, n_out: int) -> list[int] | None:
    """Which rows of the new head the folder's classes fill: all of them in order, or by name for a wider taxonomy."""
    from ferkit.models.base import ModelCard

    old = list(ModelCard.load(folder / "card.json").classes)  # the card only: checked_folder has checked the weights
    if len(old) != n_out and classes is not None and len(classes) == n_out and set(old) <= set(classes):
        return [classes.index(c) for c in old]
    return list(range(n_out)) if len(old) == n_out else None  # the same classes in order, or a misfit
