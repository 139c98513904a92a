"""The bundled ONNX model back as a torch state dict (``ferkit.training.onnx_init``: batch norms fitted on FER2013
train images), checked against onnxruntime, for the GPU run's fine-tuning arms.

    python benchmarks/wild/bundled_init.py --out .gpu/b/bundled_init.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ferkit.training.backbones import create_backbone
from ferkit.training.onnx_init import state_from_onnx

ASSET = Path(__file__).resolve().parents[2] / "src" / "ferkit" / "assets" / "models" / "ferkit" / "model.onnx"


def convert(onnx_path: Path, images: np.ndarray) -> tuple[dict, float]:
    """State dict (``ferkit.training.onnx_init``), and the largest |logit difference| against onnxruntime on
    ``images`` ((N, 48, 48) uint8)."""
    model = create_backbone("vgg_small", num_classes=7, in_channels=1)
    x = torch.from_numpy(np.ascontiguousarray(images)).float()[:, None] / 127.5 - 1
    state = state_from_onnx(onnx_path.parent, model, x)
    with torch.no_grad():
        ours = model.eval()(x)[0].numpy()
    ref = ort.InferenceSession(str(onnx_path)).run(["logits"], {"input": x.numpy()})[0]
    return state, float(np.abs(ours - ref).max())


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
