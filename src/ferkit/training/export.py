"""``ferkit export RUN``: a training run's best checkpoint → a model folder (``model.onnx`` + ``card.json``).

The folder is what ``ferkit analyze --model`` and ``ferkit evaluate --model`` load (see ``ferkit.models.base``).
The card
records classes, preprocessing, architecture, the run's config and seed, the split rule with the validation file
list (so calibration can use images the model never saw), training history and measured test metrics. Needs the
``train`` extra (torch, onnx).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from ferkit.errors import InputError
from ferkit.labels.folders import BASIC_CLASSES
from ferkit.training.backbones import create_backbone
from ferkit.training.checkpoints import load_checkpoint


class FlipAverage(torch.nn.Module):
    """Test-time augmentation inside the graph: average the outputs for the image and its mirror."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (l1, e1), (l2, e2) = self.model(x), self.model(x.flip(3))
        return (l1 + l2) / 2, (e1 + e2) / 2


def export_onnx(model: torch.nn.Module, path: Path, shape: tuple[int, int, int]) -> None:
    """ONNX (opset 17, dynamic batch) with outputs ``logits`` and ``embedding``, as model folders expect."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice: no onnxscript needed
        torch.onnx.export(
            model,
            torch.zeros(1, *shape),
            path,
            input_names=["input"],
            output_names=["logits", "embedding"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def model_spec(config: dict, classes: list[str] | None) -> dict:
    """Architecture and preprocessing of a checkpoint's config (framework runs, or the first FER2013 trainer's)."""
    if "data" in config:  # ferkit.training.config.RunConfig
        d, m = config["data"], config["model"]
        return {
            "backbone": m["backbone"],
            "options": m["options"],
            "dropout": m["dropout"],
            "input_size": d["input_size"],
            "channels": d["channels"],
            "mean": d["mean"],
            "std": d["std"],
            "classes": classes,
            "taxonomy": d["taxonomy"],
        }
    return {  # legacy flat config (commit 9bb1ec1 and before): vgg-style net on FER2013's 7 classes
        "backbone": config["backbone"],
        "options": {},
        "dropout": 0.4,
        "input_size": config["input_size"],
        "channels": "gray",
        "mean": config["mean"],
        "std": config["std"],
        "classes": list(BASIC_CLASSES),
        "taxonomy": "basic7",
    }


def model_from_checkpoint(checkpoint: dict) -> tuple[torch.nn.Module, dict]:
    """The network of a loaded ``best.pt`` (weights in, eval mode) and its :func:`model_spec`."""
    spec = model_spec(checkpoint["config"], checkpoint.get("classes"))
    model = create_backbone(
        spec["backbone"],
        num_classes=len(spec["classes"]),
        in_channels=1 if spec["channels"] == "gray" else 3,
        dropout=spec["dropout"],
        **spec["options"],
    )
    model.load_state_dict(checkpoint["model"])
    return model.eval(), spec


def export_run(
    run: Path,
    out: Path,
    name: str | None = None,
    test_dirs: list[Path] | None = None,
    flip_tta: bool = False,
    reproduce: list[str] | None = None,
) -> dict:
    """Write ``out/model.onnx`` and ``out/card.json`` from ``run/best.pt``; score each of ``test_dirs`` (crops)."""
    from ferkit.evaluation.scoring import evaluate
    from ferkit.models.base import sha256_file
    from ferkit.models.loading import load_model

    run, out = Path(run), Path(out)
    if not (run / "best.pt").is_file():
        raise InputError(f"{run}: no best.pt (not a training run, or no epoch finished yet)")
    best = load_checkpoint(run / "best.pt")
    model, spec = model_from_checkpoint(best)
    in_ch = 1 if spec["channels"] == "gray" else 3
    out.mkdir(parents=True, exist_ok=True)
    size = spec["input_size"]
    export_onnx(FlipAverage(model) if flip_tta else model, out / "model.onnx", (in_ch, size, size))
    split = json.loads((run / "split.json").read_text()) if (run / "split.json").exists() else {}
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").exists() else []
    cfg = best["config"]
    trainer = json.loads((run / "trainer.json").read_text()) if (run / "trainer.json").exists() else {}
    card = {
        "name": name or out.name,
        "version": "1",
        "classes": spec["classes"],
        "input_size": size,
        "channels": spec["channels"],
        "mean": spec["mean"],
        "std": spec["std"],
        "preprocessing": (
            f"{spec['channels']} uint8 face crop resized to input_size (cv2 INTER_AREA down / INTER_CUBIC up); photos "
            "and video frames are first aligned onto ferkit.faces.align.FER_TEMPLATE; "
            "x = (pixel / 255 - mean) / std; NCHW"
        ),
        "onnx_file": "model.onnx",
        "outputs": {"logits": "class scores (softmax gives probabilities)", "embedding": "pooled features"},
        "sha256": sha256_file(out / "model.onnx"),
        "architecture": {
            "backbone": spec["backbone"],
            "options": spec["options"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "flip_tta": flip_tta,
        },
        "training": {
            "reproduce": reproduce or [f"ferkit export {run}  # trained by `ferkit train` with {run}/config.json"],
            "trainer_commit": trainer.get("commit"),
            "taxonomy": spec["taxonomy"],
            "config": cfg,
            "seed": cfg.get("seed"),
            "best_epoch": best["epoch"],
            "selection": "weights (EMA if enabled) of the epoch with the best validation macro-F1",
            "split_rule": split.get("rule"),
            "duplicates": split.get("duplicates"),
            "dropped": split.get("dropped")
            or {k: split[k] for k in ("dropped_test_copies", "dropped_train_repeats") if k in split},
            "train_count": len(split.get("train_keys", split.get("train_files", []))),
            "validation_files": split.get("validation_files", []),
            "history": history,
        },
        "metrics": {},
    }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    for test_dir in test_dirs or []:
        block = evaluate(load_model(out, calibration=False), Path(test_dir), crops=True)
        key = f"{Path(test_dir).parent.name}_{Path(test_dir).name}"
        card["metrics"][key] = {
            k: block[k] for k in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "balanced_accuracy")
        }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    return card
