"""Training side of the in-the-wild GPU run: one job = one model, data resident on the device.

Each job mixes sources by share per batch (per-source sampling weights), augments on the device (ferkit's level-2
augmentation), trains ferkit's ``vgg_small`` with AdamW + one-cycle + EMA, and scores the EMA weights with the mirror
view on the held-out SFEW films, held-out CK+ subjects and FER2013 test. Pseudo-label and distillation jobs add
sources whose targets are a teacher's probabilities.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from gpu_data import CLASSES7, NEUTRAL, Data
from sklearn.metrics import f1_score

from ferkit.training.augment import augment_batch, scaled_levels
from ferkit.training.backbones import create_backbone

EVAL_BATCH = 2048


@dataclass
class Source:
    """One stream of training images: a hard label per image, or a teacher's probabilities (``soft``)."""

    name: str
    x: torch.Tensor  # (N, C, H, W) uint8 on the device
    share: float
    y: torch.Tensor | None = None  # (N,) long
    soft: torch.Tensor | None = None  # (N, K) teacher probabilities
    kind: str = "label"  # label | pseudo_robust | distill
    pool: torch.Tensor | None = None  # indices drawn from (default: all)


@dataclass
class Stage:
    until_epoch: int
    sources: list[Source] = field(default_factory=list)


def to_device(x: np.ndarray, device: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t[:, None] if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.contiguous().to(device)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0  # (pixel / 255 - 0.5) / 0.5, as the model card says


def make_model(k: int, channels: int, device: str) -> torch.nn.Module:
    return (
        create_backbone("vgg_small", num_classes=k, in_channels=channels)
        .to(device)
        .to(memory_format=torch.channels_last)
    )


@torch.no_grad()
def logits_of(model: torch.nn.Module, x: torch.Tensor, flip: bool = True) -> torch.Tensor:
    """Float32 logits (mirror-view average with ``flip``), in eval mode, batched."""
    model.eval()
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        b = normalise(x[i : i + EVAL_BATCH]).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", torch.bfloat16, enabled=b.is_cuda):
            z = model(b)[0].float()
            if flip:
                z = (z + model(b.flip(3))[0].float()) / 2
        out.append(z)
    return torch.cat(out) if out else torch.zeros(0)


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(x), EVAL_BATCH):
        b = normalise(x[i : i + EVAL_BATCH]).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", torch.bfloat16, enabled=b.is_cuda):
            out.append(model(b)[1].float())
    return torch.cat(out)


def scores(logits: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1 over the classes present, per-class recall; six-class figures for seven-class logits."""
    if len(y) == 0:
        return {"n": 0}
    pred = logits.argmax(1)
    present = sorted(set(y.tolist()))
    out = {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
        "recall": {classes[c]: float((pred[y == c] == c).mean()) for c in present},
        "predicted": {classes[c]: int((pred == c).sum()) for c in range(len(classes))},
    }
    if len(classes) == 7:  # six-class view: drop neutral images, argmax over the other six
        keep = y != NEUTRAL
        z = logits[keep].copy()
        z[:, NEUTRAL] = -np.inf
        p6, y6 = z.argmax(1), y[keep]
        out["six_class"] = {"n": int(keep.sum()), "accuracy": float((p6 == y6).mean()) if keep.any() else None}
    return out


def gce(logits: torch.Tensor, target: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalised cross-entropy (Zhang & Sabuncu 2018): robust to wrong labels, per sample."""
    p = F.softmax(logits.float(), 1).gather(1, target[:, None]).squeeze(1).clamp_min(1e-6)
    return (1 - p**q) / q


def batch_loss(z: torch.Tensor, src: Source, idx: torch.Tensor, cw: torch.Tensor, hp: dict) -> torch.Tensor:
    """Summed (not averaged) loss of one source's part of a batch."""
    z = z.float()
    if src.kind == "label":
        return F.cross_entropy(z, src.y[idx], weight=cw, label_smoothing=0.1, reduction="sum")
    pt = src.soft[idx]
    if src.kind == "pseudo_robust":  # teacher-certainty-weighted GCE + entropy regulariser on the student
        k = pt.shape[1]
        w = 1 - (-(pt * pt.clamp_min(1e-8).log()).sum(1)) / math.log(k)
        ps = F.softmax(z, 1)
        ent = -(ps * ps.clamp_min(1e-8).log()).sum(1)
        return (w * gce(z, pt.argmax(1))).sum() + hp["ent_weight"] * ent.sum()
    # distill: alpha * T^2 * KL(teacher || student) at temperature T, + (1 - alpha) * CE where a label exists
    t = hp["temperature"]
    pt_t = F.softmax(pt.clamp_min(1e-8).log() / t, 1)
    kl = F.kl_div(F.log_softmax(z / t, 1), pt_t, reduction="none").sum(1) * t * t
    loss = hp["alpha"] * kl.sum()
    if src.y is not None:
        loss = loss + (1 - hp["alpha"]) * F.cross_entropy(
            z, src.y[idx], weight=cw, label_smoothing=0.1, reduction="sum"
        )
    else:
        loss = loss + (1 - hp["alpha"]) * kl.sum()  # unlabelled faces: the teacher alone
    return loss


def class_weights(stages: list[Stage], k: int, device: str) -> torch.Tensor:
    """(N / n_c)^0.5, normalised to mean 1, from the labelled images of the first stage weighted by their share."""
    counts = torch.zeros(k, device=device)
    for s in stages[0].sources:
        if s.y is not None:
            pool = s.y if s.pool is None else s.y[s.pool]
            c = torch.bincount(pool, minlength=k).float()
            counts += s.share * c / c.sum()
    w = (counts.sum() / counts.clamp_min(1e-6)) ** 0.5
    return w / w.mean()


def fit(
    stages: list[Stage],
    k: int,
    channels: int,
    hp: dict,
    seed: int,
    hard_stop: float,
    device: str,
    init: dict | None = None,
) -> tuple:
    """Train one model through ``stages`` (from ``init`` weights if given); returns (EMA model, log dict).
    Epochs shrink if ``hard_stop`` nears."""
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = make_model(k, channels, device)
    if init is not None:
        model.load_state_dict(init)
    ema = make_model(k, channels, device)
    ema.load_state_dict(model.state_dict())
    decay, params, bs = hp["ema"], list(model.parameters()), hp["batch"]
    opt = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["wd"])
    cw = class_weights(stages, k, device)
    levels = scaled_levels(hp["aug_strength"])
    steps_per_epoch = max(1, hp["epoch_size"] // bs)
    epochs = stages[-1].until_epoch
    total, step, t0, done = epochs * steps_per_epoch, 0, time.time(), 0
    for epoch in range(10**6):
        if epoch >= epochs:
            break
        stage = next(s for s in stages if epoch < s.until_epoch)
        live = [s for s in stage.sources if (len(s.x) if s.pool is None else len(s.pool)) > 0]  # e.g. no confident face
        shares = torch.tensor([s.share for s in live], device=device)
        model.train()
        for _ in range(steps_per_epoch):
            frac = step / total
            warm = hp["warmup"]
            lr = hp["lr"] * (frac / warm if frac < warm else 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm))))
            for g in opt.param_groups:
                g["lr"] = max(lr, hp["lr"] * 1e-3)
            counts = torch.bincount(torch.multinomial(shares, bs, True, generator=gen), minlength=len(shares))
            xs, parts = [], []
            for s, n in zip(live, counts.tolist(), strict=True):
                if n == 0:
                    continue
                pool_n = len(s.x) if s.pool is None else len(s.pool)
                j = torch.randint(pool_n, (n,), device=device, generator=gen)
                idx = j if s.pool is None else s.pool[j]
                xs.append(s.x[idx])
                parts.append((s, idx, n))
            x = augment_batch(normalise(torch.cat(xs)), 2, gen, levels).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", torch.bfloat16, enabled=x.is_cuda):
                z = model(x)[0]
            loss, at = 0.0, 0
            for s, idx, n in parts:
                loss = loss + batch_loss(z[at : at + n], s, idx, cw, hp)
                at += n
            loss = loss / bs
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            with torch.no_grad():
                d = min(decay, (1 + step) / (10 + step))
                for e, p in zip(ema.parameters(), params, strict=True):
                    e.lerp_(p, 1 - d)
                for e, b in zip(ema.buffers(), model.buffers(), strict=True):
                    e.copy_(b)
            step += 1
        done = epoch + 1
        per_epoch = (time.time() - t0) / done
        left = int((hard_stop - time.time()) / per_epoch)
        if epochs - done > left:  # not enough time: finish the schedule sooner (the cosine still anneals)
            epochs = done + max(0, left)
            total = max(step + 1, epochs * steps_per_epoch)
    return ema, {
        "epochs_planned": stages[-1].until_epoch,
        "epochs_done": done,
        "steps": step,
        "loss": float(loss.detach()),
    }


def train_sr(data: Data, seed: int, device: str, steps: int = 1500) -> tuple[dict, dict]:
    """A small residual super-resolution net for 48→64 px gray faces, trained on the unlabelled clip faces (whole
    clips held out for its check); input = the cubic upscale of the area-downscaled face."""
    import cv2

    torch.manual_seed(seed)
    x64 = data.rep("clip", 64, "gray")
    lo = np.stack(
        [
            cv2.resize(cv2.resize(im, (48, 48), interpolation=cv2.INTER_AREA), (64, 64), interpolation=cv2.INTER_CUBIC)
            for im in x64
        ]
    )
    groups = np.asarray(data.load("clip_group"))
    val = groups >= groups.max() - 3
    hi_t, lo_t = to_device(x64, device).float() / 255, to_device(lo, device).float() / 255
    net = sr_net().to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    tr = torch.from_numpy(np.flatnonzero(~val)).to(device)
    for _ in range(steps):
        j = tr[torch.randint(len(tr), (128,), device=device)]
        a, b = lo_t[j], hi_t[j]
        flip = torch.rand(len(j), 1, 1, 1, device=device) < 0.5
        a, b = torch.where(flip, a.flip(3), a), torch.where(flip, b.flip(3), b)
        loss = (net(a) - b).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vi = torch.from_numpy(np.flatnonzero(val)).to(device)
    with torch.no_grad():
        mse_cubic = ((lo_t[vi] - hi_t[vi]) ** 2).mean().item()
        mse_sr = ((net(lo_t[vi]).clamp(0, 1) - hi_t[vi]) ** 2).mean().item()
    psnr = {"cubic_db": -10 * math.log10(mse_cubic), "sr_db": -10 * math.log10(mse_sr), "val_faces": int(val.sum())}
    return {k: v.cpu() for k, v in net.state_dict().items()}, psnr


def sr_net() -> torch.nn.Module:
    from torch import nn

    class SR(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                nn.Conv2d(32, 1, 3, padding=1),
            )  # fmt: skip

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    return SR()


@torch.no_grad()
def apply_sr(state: dict, x64_cubic: np.ndarray, device: str) -> np.ndarray:
    net = sr_net().to(device)
    net.load_state_dict(state)
    out = []
    t = to_device(x64_cubic, device)
    for i in range(0, len(t), 4096):
        out.append((net(t[i : i + 4096].float() / 255).clamp(0, 1) * 255).round().to(torch.uint8))
    return torch.cat(out)[:, 0].cpu().numpy()


__all__ = ["CLASSES7", "Source", "Stage", "apply_sr", "embed", "fit", "logits_of", "scores", "to_device", "train_sr"]
