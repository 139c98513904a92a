"""The training loop behind ``ferkit train CONFIG``: imbalance tools, schedules, EMA, AMP, checkpoints, resume.

A run folder (``<output>/<name>``) holds ``config.json``, ``split.json``, ``last.pt`` (everything needed to resume,
written atomically after every epoch, so a crash loses at most one epoch), ``best.pt`` (weights of the epoch with the
best validation macro-F1), ``history.json`` and, with offline distillation, ``teacher_logits.pt``. Checkpoints hold
only tensors and plain data and load with ``torch.load(weights_only=True)``. Every random draw of an epoch is
seeded by ``(seed, epoch)``, so in deterministic mode a resumed run gives the same weights as an uninterrupted one.
Needs the ``train`` extra (torch).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from ferkit.errors import InputError
from ferkit.training.augment import augment_batch, minority_classes, sample_levels, scaled_levels
from ferkit.training.backbones import configured_backbone, param_groups
from ferkit.training.checkpoints import git_commit, load_checkpoint, load_states, save_checkpoint
from ferkit.training.config import RunConfig
from ferkit.training.data import PreparedData, prepare_data
from ferkit.training.experiment import open_tracker
from ferkit.training.losses import BalancedSampler, class_counts, class_weights, make_loss, sample_weights
from ferkit.training.onnx_init import model_folder, state_from_onnx
from ferkit.training.runs import check_run_folder

Log = Callable[[str], None]


@dataclass
class EpochResult:
    """What one epoch produced (also a line of ``history.json``)."""

    epoch: int
    phase: str  # "minority" (pre-training on minority classes), "ce" or "focal"
    loss: float
    lr: float
    val_accuracy: float
    val_macro_f1: float
    val_balanced_accuracy: float
    val_recall: dict[str, float]
    val_f1: dict[str, float]
    seconds: float
    images_per_s: float


def build_model(
    cfg: RunConfig, num_classes: int, calib: torch.Tensor | None = None, classes: list[str] | None = None
) -> torch.nn.Module:
    """The configured backbone (``model.options`` passed through), optionally initialised from a checkpoint or an
    ONNX model folder (a name like ``ferkit`` or a path; ``calib``: uint8 NCHW training images for its norms;
    ``classes``: the run's class names, so a model folder of fewer classes can start a wider taxonomy)."""
    model = configured_backbone(cfg, num_classes)
    folder = model_folder(cfg.model.init_from) if cfg.model.init_from else None
    if folder is not None:
        if calib is None or not len(calib):
            raise InputError("model.init_from: a model folder needs training images to fit its batch norms")
        model.load_state_dict(state_from_onnx(folder, model, normalise(calib[:2048], cfg), classes))
    elif cfg.model.init_from:
        path = Path(cfg.model.init_from)
        if not path.is_file():
            raise InputError(f"model.init_from: {path} not found")
        try:
            load_states(load_checkpoint(path, {"model": dict}), path, {"model": model})
        except InputError as exc:
            raise InputError(f"model.init_from: {exc}") from None
    freeze_except(model, cfg.model.trainable)
    return model


def freeze_except(model: torch.nn.Module, trainable: list[str]) -> None:
    """Fine-tuning: only parameters whose names start with one of ``trainable`` keep training (all when empty).
    Frozen layers keep their weights; their batch norms still follow the new data's statistics."""
    if not trainable:
        return
    names = [n for n, _ in model.named_parameters()]
    for prefix in trainable:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({".".join(n.split(".")[:2]) for n in names})
            raise InputError(f"model.trainable: {prefix!r} names no parameter (e.g. {', '.join(tops)})")
    for name, p in model.named_parameters():
        p.requires_grad_(any(name == t or name.startswith(t + ".") for t in trainable))


def _scheduler(cfg: RunConfig, opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    o = cfg.optim
    total = o.epochs * steps
    if o.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, [g["lr"] for g in opt.param_groups], total_steps=total, pct_start=o.warmup_pct
        )
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    if o.schedule == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, o.restart_epochs * steps, o.restart_mult)
    return None


def _ema_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """EMA update with a warm-up: decay min(decay, (1 + n) / (10 + n)) after n updates, so short runs and the
    first epochs are not dominated by the initial weights."""

    def fn(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return avg * d + new * (1 - d)

    return fn


def _seed(seed: int, epoch: int) -> torch.Generator:
    """Seed every generator an epoch draws from; returns the augmentation generator."""
    s = seed * 100_003 + epoch
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module, x: torch.Tensor, cfg: RunConfig, device: str, batch: int = 512
) -> np.ndarray:
    """Logits for uint8 NCHW images in eval mode."""
    model.eval()
    out = [
        model(normalise(x[i : i + batch].to(device), cfg).contiguous(memory_format=torch.channels_last))[0]
        .float()
        .cpu()
        for i in range(0, len(x), batch)
    ]
    return torch.cat(out).numpy()


def normalise(x: torch.Tensor, cfg: RunConfig) -> torch.Tensor:
    return (x.float() / 255 - cfg.data.mean) / cfg.data.std


def scores(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    """Validation metrics (scikit-learn): accuracy, macro-F1, balanced accuracy, per-class recall/F1, confusion."""
    labels = list(range(len(classes)))
    rec = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    f1 = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float((y == pred).mean()),
        "macro_f1": float(f1.mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "recall": dict(zip(classes, rec.round(4).tolist(), strict=True)),
        "f1": dict(zip(classes, f1.round(4).tolist(), strict=True)),
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def train(
    cfg: RunConfig, resume: bool = False, log: Log = print, on_step: Callable[[int, int], None] | None = None
) -> dict:
    """Run (or resume) a training run; returns ``{"run_dir", "best_epoch", "best", "history"}``."""
    run_dir = cfg.run_dir
    last = check_run_folder(cfg, resume)  # before any output: a damaged run folder is one error line
    device = "cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if cfg.device == "cuda" and device != "cuda":
        raise InputError("device: cuda requested but torch sees no GPU")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before CUDA starts)
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not cfg.deterministic
    _seed(cfg.seed, -1)
    data = prepare_data(cfg, run_dir, log, resume)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    if not resume:
        (run_dir / "trainer.json").write_text(json.dumps({"commit": git_commit(), "torch": torch.__version__}))
    return _fit(cfg, data, device, last, log, on_step)


def _fit(cfg: RunConfig, data: PreparedData, device: str, last: dict | None, log: Log, on_step) -> dict:
    """Train (``last``: the ``last.pt`` of a resumed run) and checkpoint every epoch."""
    run_dir, o, imb, resume = cfg.run_dir, cfg.optim, cfg.imbalance, last is not None
    classes, n_cls = data.classes, len(data.classes)
    model = build_model(cfg, n_cls, data.x_train, classes).to(device, memory_format=torch.channels_last)
    ema = None
    if o.ema_decay > 0:
        ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema_fn(o.ema_decay), use_buffers=True)
    groups = param_groups(model, o.lr, o.head_lr_mult, o.weight_decay)
    if o.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr)
    counts = class_counts(data.y_train, n_cls)
    weights = class_weights(counts, imb.class_weights, imb.class_weight_power, imb.effective_beta).to(device)
    ce = make_loss("ce", weights, imb.focal_gamma, o.label_smoothing)
    focal = make_loss("focal", weights, imb.focal_gamma, o.label_smoothing)
    unknown = [c for c in imb.minority if c not in classes]
    if unknown:
        raise InputError(f"imbalance.minority: {', '.join(unknown)} not among the classes ({', '.join(classes)})")
    minority = [classes.index(c) for c in imb.minority] if imb.minority else minority_classes(counts.tolist())
    if imb.minority_pretrain_epochs and not minority:
        log("no minority classes (equal class counts): the minority pre-training epochs are skipped")
    uneven_sources = len({s.weight for s in cfg.data.sources}) > 1
    sampler = None
    if imb.sampler == "weighted" or uneven_sources:
        power = imb.sampler_power if imb.sampler == "weighted" else 0.0
        sampler = BalancedSampler(sample_weights(data.y_train, power, data.source_weight), None, cfg.seed)
    minority_idx = torch.nonzero(torch.isin(data.y_train, torch.tensor(minority, dtype=torch.long))).flatten()
    steps = math.ceil(len(data.y_train) / o.batch_size)
    aug_levels = scaled_levels(cfg.augment.strength)
    ml = cfg.augment.minority_level
    if ml is not None and ml != cfg.augment.level:
        occl = ("erase_p", "gridmask_p", "coarse_dropout_p")
        only = [f for f in occl if getattr(aug_levels[ml], f) > 0 and not getattr(aug_levels[cfg.augment.level], f)]
        if only:
            log(
                f"warning: {', '.join(only)} only on minority classes can become a class cue (the net learns the "
                "artefact, not the face); see the ablation in docs/training.md"
            )
    teacher, soft_targets = None, None
    if cfg.distill.teacher:
        from ferkit.training.distill import Teacher, distill_loss

        teacher = Teacher(cfg, classes, device)
        dc = cfg.distill
        log(f"distilling from {dc.teacher} ({dc.views} views, alpha {dc.alpha}, T {dc.temperature})")
        if dc.offline:  # cached in the run folder, so --resume does not score the train set again
            cache = run_dir / "teacher_logits.pt"
            if resume and cache.is_file():
                soft_targets = load_checkpoint(cache, {"logits": torch.Tensor})["logits"]
            else:
                soft_targets = teacher.table(data.x_train, lambda x: normalise(x, cfg))
                save_checkpoint(cache, {"logits": soft_targets, "teacher": dc.teacher, "views": dc.views})
    sched = _scheduler(cfg, opt, steps)
    use_amp = o.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    total_epochs = imb.minority_pretrain_epochs + o.epochs
    start, best, best_epoch, history = 0, -1.0, -1, []
    tracker_id = None
    if last is not None:
        parts = {"model": model, "ema": ema, "opt": opt, "sched": sched, "scaler": scaler}
        load_states(last, run_dir / "last.pt", {k: v for k, v in parts.items() if v is not None})
        start, best, best_epoch, history = last["epoch"] + 1, last["best"], last["best_epoch"], last["history"]
        tracker_id = last.get("mlflow_run_id")
        log(f"resuming {run_dir} at epoch {start}")
    t = cfg.tracking
    tracker = open_tracker(t.mlflow, t.uri, t.experiment, Path(cfg.output), cfg.name, tracker_id)
    if not resume:
        tracker.log_params({**cfg.to_dict(), "train_count": len(data.y_train), "validation_count": len(data.y_val)})
        tracker.log_dict(data.split.get("duplicates", {}), "duplicates.json")
    status = "FAILED"
    try:
        for epoch in range(start, total_epochs):
            gen = _seed(cfg.seed, epoch)
            pre = epoch < imb.minority_pretrain_epochs
            main_epoch = epoch - imb.minority_pretrain_epochs
            if pre:
                phase, loss_fn = "minority", ce
                order = minority_idx[torch.randperm(len(minority_idx), generator=gen)]
            else:
                two_stage = imb.focal_from_epoch is not None and main_epoch >= imb.focal_from_epoch
                phase = "focal" if imb.loss == "focal" or two_stage else "ce"
                loss_fn = focal if phase == "focal" else ce
                order = (
                    torch.from_numpy(sampler.epoch(epoch))
                    if sampler is not None
                    else torch.randperm(len(data.y_train), generator=gen)
                )
            model.train()
            t0, total, n_seen = time.time(), 0.0, 0
            n_steps = math.ceil(len(order) / o.batch_size)
            for b in range(n_steps):
                idx = order[b * o.batch_size : (b + 1) * o.batch_size]
                y = data.y_train[idx]
                boosted = cfg.augment.level if cfg.augment.minority_level is None else cfg.augment.minority_level
                levels = sample_levels(y, cfg.augment.level, minority, boosted)
                x = augment_batch(normalise(data.x_train[idx], cfg), levels, gen, aug_levels)
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                y = y.to(device)
                with torch.autocast(device, dtype=torch.float16, enabled=use_amp):
                    logits, _ = model(x)
                    loss = loss_fn(logits.float(), y)
                    if teacher is not None:
                        target = teacher.logits(x) if soft_targets is None else soft_targets[idx].to(device)
                        kd = distill_loss(logits.float(), target, cfg.distill.temperature)
                        loss = (1 - cfg.distill.alpha) * loss + cfg.distill.alpha * kd
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if o.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
                scaler.step(opt)
                scaler.update()
                if sched is not None and not pre:
                    sched.step()
                if ema is not None:
                    ema.update_parameters(model)
                total += loss.item() * len(idx)
                n_seen += len(idx)
                if on_step:
                    on_step(b + 1, n_steps)
            seconds = time.time() - t0
            scored = ema.module if ema is not None else model
            val = scores(data.y_val.numpy(), predict_logits(scored, data.x_val, cfg, device).argmax(1), classes)
            res = EpochResult(
                epoch,
                phase,
                total / max(n_seen, 1),
                opt.param_groups[0]["lr"],
                val["accuracy"],
                val["macro_f1"],
                val["balanced_accuracy"],
                val["recall"],
                val["f1"],
                seconds,
                n_seen / seconds,
            )
            history.append(res.__dict__)
            log(
                f"epoch {epoch} ({phase}) loss {res.loss:.3f} val acc {res.val_accuracy:.4f} "
                f"macro-F1 {res.val_macro_f1:.4f} ({seconds:.0f} s, {res.images_per_s:.0f} img/s)"
            )
            tracker.log_metrics(
                {
                    "loss": res.loss,
                    "lr": res.lr,
                    "val_accuracy": res.val_accuracy,
                    "val_macro_f1": res.val_macro_f1,
                    "val_balanced_accuracy": res.val_balanced_accuracy,
                    "images_per_s": res.images_per_s,
                    **{f"val_recall_{c}": v for c, v in res.val_recall.items()},
                    **{f"val_f1_{c}": v for c, v in res.val_f1.items()},
                },
                step=epoch,
            )
            if val["macro_f1"] > best:
                best, best_epoch = val["macro_f1"], epoch
                best_state = {k: v.detach().cpu() for k, v in scored.state_dict().items()}
                save_checkpoint(
                    run_dir / "best.pt",
                    {
                        "model": best_state,
                        "config": cfg.to_dict(),
                        "epoch": epoch,
                        "classes": classes,
                        "validation": {k: v for k, v in val.items()},
                    },
                )
                tracker.log_dict({"labels": classes, "matrix": val["confusion"], "epoch": epoch}, "confusion_best.json")
            save_checkpoint(
                run_dir / "last.pt",
                {
                    "model": model.state_dict(),
                    "ema": ema.state_dict() if ema is not None else {},
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict() if sched is not None else {},
                    "scaler": scaler.state_dict(),
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "history": history,
                    "config": cfg.to_dict(),
                    "mlflow_run_id": getattr(tracker, "run_id", None),
                },
            )
            (run_dir / "history.json").write_text(json.dumps(history, indent=1))
            if o.patience and not pre and epoch - best_epoch >= o.patience:
                log(f"early stop: no better validation macro-F1 for {o.patience} epochs (best epoch {best_epoch})")
                break
        status = "FINISHED"
    finally:
        tracker.end(status)
    return {
        "run_dir": str(run_dir),
        "best_epoch": best_epoch,
        "best_val_macro_f1": best,
        "history": history,
        "mlflow_run_id": getattr(tracker, "run_id", None),
    }
