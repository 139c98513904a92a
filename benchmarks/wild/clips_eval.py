"""Score GPU-run models on the labelled talking clips (``video_labelled``: evaluation only, never trained or tuned
on) through the real pipeline: each state dict becomes an ONNX model folder, then ``ferkit evaluate`` (5 fps,
smoothed frame labels, clip = majority; uncalibrated, as every arm of the ablation is).

    python benchmarks/wild/clips_eval.py --models /work/.device/6 --out benchmarks/results/wild_clips.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from ferkit.api import evaluate
from ferkit.models.base import sha256_file
from ferkit.training.backbones import create_backbone
from ferkit.training.export import export_onnx

CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


class MeanOfMembers(torch.nn.Module):
    """Several networks on one input as one graph: logits = the mean of the members' logits, embedding = the first
    member's (so heads built on that member's embedding, e.g. a gate, read the same features)."""

    def __init__(self, members: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m(x) for m in self.members]
        return torch.stack([o[0] for o in outs]).mean(0), outs[0][1]


def export_folder(state: dict | list[dict], rep: list, out: Path, name: str, extra: dict | None = None) -> Path:
    """``out/model.onnx`` + ``out/card.json`` for a ``vgg_small`` state dict at input ``rep`` (size, channels); a
    list of state dicts is exported as their output ensemble (:class:`MeanOfMembers`)."""
    states = state if isinstance(state, list) else [state]
    size, channels = int(rep[0]), rep[1]
    k = states[0]["head.weight"].shape[0]
    members = []
    for st in states:
        m = create_backbone("vgg_small", num_classes=k, in_channels=1 if channels == "gray" else 3)
        m.load_state_dict({n: t.float() for n, t in st.items()})
        members.append(m)
    model = members[0] if len(members) == 1 else MeanOfMembers(members)
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model.eval(), out / "model.onnx", (1 if channels == "gray" else 3, size, size))
    card = {
        "name": name, "version": "1", "classes": CLASSES if k == 7 else [c for c in CLASSES if c != "neutral"],
        "input_size": size, "channels": channels, "mean": 0.5, "std": 0.5, "onnx_file": "model.onnx",
        "preprocessing": "uint8 face crop aligned onto ferkit.align.FER_TEMPLATE at input_size; "
        "x = (pixel / 255 - mean) / std; NCHW",
        "outputs": {"logits": "class scores", "embedding": "pooled features"},
        "architecture": {"backbone": "vgg_small", "options": {}, "flip_tta": False},
        "sha256": sha256_file(out / "model.onnx"), **(extra or {}),
    }  # fmt: skip
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True, help="a GPU run's output folder (arms_*.pt, finals.pt)")
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="more model folders to score beside them")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/video_labelled")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wild_models_"))
    folders: dict[str, Path] = {}
    for f in [*sorted(a.models.glob("arms_*.pt")), a.models / "finals.pt"]:
        for job, v in torch.load(f, weights_only=True).items():
            if job == "sr":
                continue
            folders[job] = export_folder(v["state"], v["rep"], tmp / job.replace("/", "_"), job)
    for extra in a.extra:
        folders[str(extra)] = extra
    rows = {}
    for job, folder in folders.items():
        block = evaluate(a.data, models=[str(folder)], calibration=False)["results"][0]
        rows[job] = {
            "frames": {"n": block["n"], "accuracy": block["accuracy"], "macro_f1": block["macro_f1"]},
            "clips": {k: block["clip_level"][k] for k in ("n", "accuracy", "macro_f1")},
            "disgust_clip": next((r["predicted"] for r in block["per_clip"] if r["true"] == "disgust"), None),
            "per_clip": {r["true"]: r["predicted"] for r in block["per_clip"]},
        }
        print(job, rows[job]["frames"]["accuracy"], rows[job]["clips"]["accuracy"], rows[job]["per_clip"], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
