"""The bundled ONNX model (``vgg_small``, batch norm folded into the convolutions) back as a torch state dict.

Each folded convolution ``y = W·x + b`` becomes conv ``W`` (no bias) + batch norm with running mean μ, variance
σ² − ε, weight σ and bias μ + b, where μ and σ are the per-channel statistics of ``W·x`` on FER2013 training
images: eval mode reproduces the ONNX outputs, and train mode starts from the same function on data-like batches
(a warm start for fine-tuning).

    python benchmarks/wild/bundled_init.py --out .gpu/b/bundled_init.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from ferkit.training.backbones import create_backbone

ASSET = Path(__file__).resolve().parents[2] / "src" / "ferkit" / "assets" / "models" / "ferkit" / "model.onnx"


def convert(onnx_path: Path, images: np.ndarray) -> tuple[dict, float]:
    """State dict, and the largest |logit difference| against onnxruntime on ``images`` ((N, 48, 48) uint8)."""
    g = onnx.load(str(onnx_path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv"]
    model = create_backbone("vgg_small", num_classes=7, in_channels=1).eval()
    layers = [m for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.features.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(layers) == len(convs) == len(bns)
    x = torch.from_numpy(images).float()[:, None] / 127.5 - 1
    with torch.no_grad():
        for conv, bn, node in zip(
            layers, bns, convs, strict=True
        ):  # identity norms first: eval mode = the folded graph
            conv.weight.copy_(torch.from_numpy(init[node.input[1]]))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(init[node.input[2]]))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        model.head.weight.copy_(torch.from_numpy(init["head.weight"]))
        model.head.bias.copy_(torch.from_numpy(init["head.bias"]))
        stats = []
        hooks = [c.register_forward_hook(lambda m, i, o: stats.append(o.transpose(0, 1).flatten(1))) for c in layers]
        model(x)
        for h in hooks:
            h.remove()
        for bn, y in zip(
            bns, stats, strict=True
        ):  # re-parametrise with the data's statistics (same eval-mode function)
            mu, var = y.mean(1), y.var(1, unbiased=False)
            b = bn.bias.clone()
            bn.running_mean.copy_(mu)
            bn.running_var.copy_(var - bn.eps)
            bn.weight.copy_(var.sqrt())
            bn.bias.copy_(mu + b)
        ours = model(x)[0].numpy()
    ref = ort.InferenceSession(str(onnx_path)).run(["logits"], {"input": x.numpy()})[0]
    return {k: v.clone() for k, v in model.state_dict().items()}, float(np.abs(ours - ref).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fer", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/fer2013/train")
    ap.add_argument("--out", type=Path, default=Path(".gpu/b/bundled_init.pt"))
    a = ap.parse_args()
    from ferkit.faces.align import resize_crop
    from ferkit.media.images import read_image

    files = sorted(a.fer.glob("*/*.jpg"))[::14][:2048]
    images = np.stack([resize_crop(read_image(p), 48, "gray") for p in files])
    state, err = convert(ASSET, images)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, a.out)
    print(f"wrote {a.out}; max |logit - onnxruntime| on {len(images)} FER2013 train images: {err:.2e}")


if __name__ == "__main__":
    main()
