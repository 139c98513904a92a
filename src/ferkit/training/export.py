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
from ferkit.training.backbones import configured_backbone
from ferkit.training.checkpoints import BEST_KEYS, load_checkpoint, load_states
from ferkit.training.config import RunConfig, config_from_dict
from ferkit.training.runs import read_run_json, read_split

#: The keys of a legacy flat config (commit 9bb1ec1 and before) that the export reads.
_LEGACY_KEYS = ("backbone", "input_size", "mean", "std")


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


def checkpoint_config(config: dict) -> RunConfig:
    """The run config a checkpoint was trained with, validated like a config file. A legacy flat config (commit
    9bb1ec1 and before: a vgg-style net on FER2013's gray images) is read as the run config it stands for."""
    if "data" not in config and "model" not in config and all(k in config for k in _LEGACY_KEYS):
        data = {"sources": [{"path": "fer2013"}], **{k: config[k] for k in ("input_size", "mean", "std")}}
        config = {"name": "legacy", "data": data, "model": {"backbone": config["backbone"]}}
    missing = [k for k in ("data", "model") if k not in config]
    if missing:
        raise InputError(f"no {missing[0]!r} section")
    return config_from_dict(config)


def model_spec(cfg: RunConfig, classes: list[str]) -> dict:
    """Architecture and preprocessing of a checkpoint's run config (as the model card records them)."""
    d, m = cfg.data, cfg.model
    return {
        "backbone": m.backbone,
        "options": m.options,
        "dropout": m.dropout,
        "input_size": d.input_size,
        "channels": d.channels,
        "mean": d.mean,
        "std": d.std,
        "classes": classes,
        "taxonomy": d.taxonomy,
    }


def model_from_checkpoint(checkpoint: dict, where: object = "checkpoint") -> tuple[torch.nn.Module, dict]:
    """The network of a ``best.pt`` loaded with :data:`BEST_KEYS` (weights in, eval mode) and its :func:`model_spec`;
    ``InputError`` naming ``where`` if its config, class list or weights do not make that network."""
    classes = checkpoint.get("classes", list(BASIC_CLASSES) if "data" not in checkpoint["config"] else None)
    names = isinstance(classes, list) and all(isinstance(c, str) and c.strip() for c in classes)
    if not names or len(classes) < 2 or len(set(classes)) < len(classes):
        raise InputError(f"{where}: classes must be a list of distinct class names, got {classes!r}"[:300])
    weights = checkpoint["model"]
    nonfinite = [k for k, v in weights.items() if isinstance(v, torch.Tensor) and not v.isfinite().all()]
    if nonfinite:
        raise InputError(
            f"{where}: {len(nonfinite)} weight tensors hold NaN or inf (e.g. {nonfinite[0]}): the run diverged"
        )
    try:
        cfg = checkpoint_config(checkpoint["config"])
        model = configured_backbone(cfg, len(classes))
    except InputError as exc:
        raise InputError(f"{where}: its config: {exc}") from None
    load_states(checkpoint, where, {"model": model})
    return model.eval(), model_spec(cfg, classes)


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
    best = load_checkpoint(run / "best.pt", BEST_KEYS)
    split = read_split(run / "split.json", required=False)
    history = read_run_json(run / "history.json", list, [])
    trainer = read_run_json(run / "trainer.json", dict, {})
    model, spec = model_from_checkpoint(best, run / "best.pt")  # everything is checked before anything is written
    in_ch = 1 if spec["channels"] == "gray" else 3
    out.mkdir(parents=True, exist_ok=True)
    size = spec["input_size"]
    export_onnx(FlipAverage(model) if flip_tta else model, out / "model.onnx", (in_ch, size, size))
    cfg = best["config"]
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
