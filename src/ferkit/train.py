"""Reproducible trainer for the bundled ``ferkit`` model (FER2013 crops, 7 classes).

``python -m ferkit.train fit --data ../shared/data/fer2013 --run runs/bundled`` trains with checkpoints every
epoch (``--resume`` continues), and ``python -m ferkit.train export --run runs/bundled --out models/ferkit`` writes
the model folder (``model.onnx`` + ``card.json``). Needs the ``train`` extra (torch).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import typer
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from ferkit.align import resize_crop
from ferkit.backbones import create_backbone
from ferkit.datasets import BASIC_CLASSES, file_digest, list_folder_dataset

CLASSES = BASIC_CLASSES


@dataclass
class TrainConfig:
    """Everything that decides the result of a run (stored in the checkpoint and the model card)."""

    backbone: str = "vgg_small"
    input_size: int = 48
    epochs: int = 24
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    class_weight_power: float = 0.5  # CE weight of class c = (N / n_c) ** power, normalised to mean 1
    ema_decay: float = 0.999
    val_fraction: float = 0.1
    seed: int = 0
    mean: float = 0.5
    std: float = 0.5
    warmup_pct: float = 0.3  # share of the one-cycle schedule spent raising the learning rate
    init_from: str | None = None  # start from another run's best.pt (a warm restart), else random init
    augment: dict[str, float] = field(
        default_factory=lambda: {"rotate_deg": 10.0, "scale": 0.1, "shift": 0.12, "jitter": 0.25, "erase_p": 0.5}
    )


def build_split(data: Path, cfg: TrainConfig) -> dict[str, object]:
    """Deduplicate train (drop byte copies of test images and repeated train files), then split off validation."""
    train = list_folder_dataset(data / "train")
    test_hashes = {file_digest(i.path) for i in list_folder_dataset(data / "test")}
    seen: set[str] = set()
    kept, leak, dup = [], 0, 0
    for item in train:
        h = file_digest(item.path)
        if h in test_hashes:
            leak += 1
        elif h in seen:
            dup += 1
        else:
            seen.add(h)
            kept.append(item)
    rel = [f"{i.folder}/{i.path.name}" for i in kept]
    labels = [CLASSES.index(i.label) for i in kept]
    tr, va = train_test_split(
        list(range(len(kept))), test_size=cfg.val_fraction, random_state=cfg.seed, stratify=labels
    )
    return {
        "rule": (
            "fer2013/train, minus files byte-identical to a fer2013/test file and repeated train files (first kept, "
            "sorted order); stratified validation split with sklearn train_test_split(test_size=val_fraction, "
            "random_state=seed) over the remaining sorted list"
        ),
        "dropped_test_copies": leak,
        "dropped_train_repeats": dup,
        "train_files": sorted(rel[i] for i in tr),
        "validation_files": sorted(rel[i] for i in va),
    }


def load_images(root: Path, rel: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Load ``class/file`` crops through the same resize path as ``ferkit analyze --crops``."""
    xs = np.stack([resize_crop(cv2.imread(str(root / r), cv2.IMREAD_GRAYSCALE), size, "gray") for r in rel])
    ys = np.array([CLASSES.index(r.split("/")[0]) for r in rel])
    return torch.from_numpy(xs).unsqueeze(1), torch.from_numpy(ys)


def augment(x: torch.Tensor, a: dict[str, float], gen: torch.Generator) -> torch.Tensor:
    """Batch augmentation on normalised images: flip, affine, brightness/contrast jitter, random erasing."""
    n = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    x = torch.where(u(n, 1, 1, 1) < 0.5, x.flip(3), x)
    ang = (u(n) * 2 - 1) * math.radians(a["rotate_deg"])
    sc = 1 + (u(n) * 2 - 1) * a["scale"]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(ang) / sc, -torch.sin(ang) / sc
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(ang) / sc, torch.cos(ang) / sc
    theta[:, :, 2] = (u(n, 2) * 2 - 1) * a["shift"]
    x = F.grid_sample(
        x, F.affine_grid(theta, list(x.shape), align_corners=False), padding_mode="border", align_corners=False
    )
    j = a["jitter"]
    x = x * (1 + (u(n, 1, 1, 1) * 2 - 1) * j) + (u(n, 1, 1, 1) * 2 - 1) * j
    h, w = x.shape[2:]
    for i in torch.nonzero(u(n) < a["erase_p"]).flatten().tolist():
        area = (0.02 + 0.18 * u(1).item()) * h * w
        ratio = math.exp((u(1).item() * 2 - 1) * math.log(3))
        eh, ew = min(h, round(math.sqrt(area * ratio))), min(w, round(math.sqrt(area / ratio)))
        top, left = int(u(1).item() * (h - eh + 1)), int(u(1).item() * (w - ew + 1))
        x[i, :, top : top + eh, left : left + ew] = torch.randn(1, eh, ew, generator=gen)
    return x


def _normalise(x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    return (x.float() / 255 - cfg.mean) / cfg.std


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, cfg: TrainConfig, batch: int = 512) -> np.ndarray:
    """Logits for uint8 images, in eval mode."""
    model.eval()
    return torch.cat([model(_normalise(x[i : i + batch], cfg))[0] for i in range(0, len(x), batch)]).numpy()


def fit(data: Path, run: Path, cfg: TrainConfig, resume: bool) -> None:
    """Train with per-epoch checkpoints (``last.pt``) and keep the best validation macro-F1 (``best.pt``)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run.mkdir(parents=True, exist_ok=True)
    split_file = run / "split.json"
    if not split_file.exists():
        split_file.write_text(json.dumps(build_split(data, cfg)))
    split = json.loads(split_file.read_text())
    xtr, ytr = load_images(data / "train", split["train_files"], cfg.input_size)
    xva, yva = load_images(data / "train", split["validation_files"], cfg.input_size)
    counts = torch.bincount(ytr, minlength=len(CLASSES)).float()
    weights = (counts.sum() / counts) ** cfg.class_weight_power
    weights = weights / weights.mean()
    model = create_backbone(cfg.backbone, num_classes=len(CLASSES)).to(memory_format=torch.channels_last)
    if cfg.init_from:
        model.load_state_dict(torch.load(cfg.init_from, weights_only=True)["model"])
    ema = torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
    )
    opt = torch.optim.SGD(model.parameters(), lr=cfg.max_lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(xtr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, cfg.max_lr, epochs=cfg.epochs, steps_per_epoch=steps, pct_start=cfg.warmup_pct
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    start, best, history = 0, -1.0, []
    if resume and (run / "last.pt").exists():
        ck = torch.load(run / "last.pt", weights_only=False)  # our own checkpoint: optimiser state + RNG
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        start, best, history = ck["epoch"] + 1, ck["best"], ck["history"]
    for epoch in range(start, cfg.epochs):
        model.train()
        t0, total = time.time(), 0.0
        perm = torch.randperm(len(xtr), generator=gen)
        for b in range(steps):
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x = augment(_normalise(xtr[idx], cfg), cfg.augment, gen).contiguous(memory_format=torch.channels_last)
            logits, _ = model(x)
            loss = F.cross_entropy(logits, ytr[idx], weight=weights, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(model)
            total += loss.item()
        pred = predict(ema.module, xva, cfg).argmax(1)
        acc = float((pred == yva.numpy()).mean())
        mf1 = float(f1_score(yva.numpy(), pred, average="macro"))
        history.append(
            {
                "epoch": epoch,
                "loss": total / steps,
                "val_accuracy": acc,
                "val_macro_f1": mf1,
                "seconds": time.time() - t0,
            }
        )
        print(json.dumps(history[-1]), flush=True)
        if mf1 > best:
            best = mf1
            torch.save({"model": ema.module.state_dict(), "config": asdict(cfg), "epoch": epoch}, run / "best.pt")
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "gen": gen.get_state(),
                "epoch": epoch,
                "best": best,
                "history": history,
                "config": asdict(cfg),
            },
            run / "last.pt.tmp",
        )
        (run / "last.pt.tmp").replace(run / "last.pt")
    (run / "history.json").write_text(json.dumps(history, indent=1))


class FlipAverage(torch.nn.Module):
    """Test-time augmentation inside the graph: average the outputs for the image and its mirror."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (l1, e1), (l2, e2) = self.model(x), self.model(x.flip(3))
        return (l1 + l2) / 2, (e1 + e2) / 2


def export(
    run: Path,
    out: Path,
    test_dir: Path | None = None,
    name: str = "ferkit",
    flip_tta: bool = False,
    reproduce: list[str] | None = None,
) -> dict:
    """Export ``run/best.pt`` to ``out/model.onnx`` + ``out/card.json``; score on ``test_dir`` if given.

    ``flip_tta`` builds mirror averaging into the graph (about +0.5 % accuracy for twice the compute).
    """
    from ferkit.evaluation import evaluate
    from ferkit.models import load_model, sha256_file

    best = torch.load(run / "best.pt", weights_only=True)
    cfg = TrainConfig(**best["config"])
    model = create_backbone(cfg.backbone, num_classes=len(CLASSES))
    model.load_state_dict(best["model"])
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 1, cfg.input_size, cfg.input_size)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter: no onnxscript needed
    torch.onnx.export(
        FlipAverage(model) if flip_tta else model,
        dummy,
        out / "model.onnx",
        input_names=["input"],
        output_names=["logits", "embedding"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    split = json.loads((run / "split.json").read_text())
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").exists() else []
    card = {
        "name": name,
        "version": "1",
        "classes": CLASSES,
        "input_size": cfg.input_size,
        "channels": "gray",
        "mean": cfg.mean,
        "std": cfg.std,
        "preprocessing": (
            "gray uint8 face crop resized to input_size (cv2 INTER_AREA down / INTER_CUBIC up); photos and video "
            "frames are first aligned onto ferkit.align.FER_TEMPLATE; x = (pixel / 255 - mean) / std; NCHW"
        ),
        "onnx_file": "model.onnx",
        "outputs": {"logits": "class scores (softmax gives probabilities)", "embedding": "pooled features"},
        "sha256": sha256_file(out / "model.onnx"),
        "architecture": {
            "backbone": cfg.backbone,
            "parameters": sum(p.numel() for p in model.parameters()),
            "flip_tta": flip_tta,
        },
        "training": {
            "reproduce": reproduce or [f"python -m ferkit.train fit --data ../shared/data/fer2013 --run {run}"],
            "config": asdict(cfg),
            "seed": cfg.seed,
            "best_epoch": best["epoch"],
            "selection": "EMA weights of the epoch with the best validation macro-F1",
            "data": "FER2013 train (../shared/data/fer2013/train), 7 classes",
            "split_rule": split["rule"],
            "dropped_test_copies": split["dropped_test_copies"],
            "dropped_train_repeats": split["dropped_train_repeats"],
            "train_count": len(split["train_files"]),
            "validation_files": split["validation_files"],
            "history": history,
        },
        "metrics": {},
    }
    (out / "card.json").write_text(json.dumps(card, indent=1))
    if test_dir is not None:
        block = evaluate(load_model(out), test_dir, crops=True)
        card["metrics"] = {
            "fer2013_test": {k: block[k] for k in ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix")}
        }
        (out / "card.json").write_text(json.dumps(card, indent=1))
    return card


app = typer.Typer(add_completion=False, help=__doc__)


@app.command("export")
def export_cmd(
    run: Path = typer.Option(Path("runs/bundled"), help="run folder with best.pt and split.json"),
    out: Path = typer.Option(Path("src/ferkit/models/ferkit"), help="model folder to write"),
    test_dir: Path | None = typer.Option(None, help="score the exported model here (e.g. fer2013/test)"),
    name: str = typer.Option("ferkit", help="model name recorded in the card"),
    flip_tta: bool = typer.Option(False, help="average with the mirrored image inside the graph"),
    reproduce: list[str] = typer.Option([], help="commands that reproduce the run (recorded in the card)"),
) -> None:
    """Export the best checkpoint to an ONNX model folder with its card."""
    card = export(run, out, test_dir, name, flip_tta, reproduce or None)
    typer.echo(json.dumps(card["metrics"].get("fer2013_test", {}).get("accuracy")))


@app.command("fit")
def fit_cmd(
    data: Path = typer.Option(..., help="FER2013 root with train/ and test/ class folders"),
    run: Path = typer.Option(Path("runs/bundled"), help="run folder for split, checkpoints and history"),
    epochs: int = typer.Option(24),
    seed: int = typer.Option(0),
    max_lr: float = typer.Option(0.1),
    warmup_pct: float = typer.Option(0.3),
    init_from: Path | None = typer.Option(None, help="warm restart from another run's best.pt"),
    augment_scale: float = typer.Option(1.0, help="multiply every augmentation strength (0.5 = half as strong)"),
    split_from: Path | None = typer.Option(None, help="reuse another run's split.json (same validation images)"),
    resume: bool = typer.Option(False, help="continue from run/last.pt"),
) -> None:
    """Train the bundled model."""
    if split_from is not None:
        run.mkdir(parents=True, exist_ok=True)
        (run / "split.json").write_text(split_from.read_text())
    cfg = TrainConfig(
        epochs=epochs, seed=seed, max_lr=max_lr, warmup_pct=warmup_pct, init_from=str(init_from) if init_from else None
    )
    cfg.augment = {k: v * augment_scale for k, v in cfg.augment.items()}
    fit(data, run, cfg, resume)


if __name__ == "__main__":
    app()
