"""Worker side of the in-the-wild GPU run (gpu_run.py): the arms, and one job = one model trained and scored.

Each worker process holds the packed data (memory-mapped) and its input representations as device tensors.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np
import torch
from gpu_data import CLASSES7, NEUTRAL, Data
from gpu_train import Source, Stage, apply_sr, embed, fit, logits_of, scores, to_device, train_sr

ARMS_B = {  # name: (size, channels, upscaling, shares, classes)
    "mix64g_cubic": (64, "gray", "cubic", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
    "fer48g": (48, "gray", "cubic", {"fer": 1.0}, 7),
    "mix48g": (48, "gray", "cubic", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
    "mix64rgb_cubic": (64, "rgb", "cubic", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
    "mix64g_lanczos": (64, "gray", "lanczos", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
    "mix64g_sr": (64, "gray", "sr", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
    "mix64g_basic6": (64, "gray", "cubic", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 6),
    "ft48g": (48, "gray", "cubic", {"fer": 0.75, "sfew": 0.15, "ck": 0.10}, 7),
}
FT_ARMS = {"ft48g"}  # start from the bundled model's weights (bundled_init.py) at the fine-tuning learning rate
ARMS_C = ("prog64g", "pseudo_thresh", "pseudo_robust")  # all on mix64g_cubic's input, taught by it
HP = {
    "lr": 2e-3, "wd": 0.05, "batch": 256, "warmup": 0.1, "ema": 0.998, "aug_strength": 0.7,
    "temperature": 2.0, "alpha": 0.7, "ent_weight": 0.1, "epoch_size": 20000, "lr_ft": 5e-4,
}  # fmt: skip
W: dict = {}  # per worker process: data, device, cached device tensors


def init_worker(root: str, device: str, smoke: bool, init_path: str) -> None:
    torch.backends.cudnn.benchmark = True
    torch.set_num_threads(1 if device == "cuda" else 2)
    init = torch.load(init_path, weights_only=True) if Path(init_path).is_file() else None
    W.update(data=Data(Path(root)), device=device, cache={}, smoke=smoke, init=init)


def rep_x(src: str, rep: tuple, sr_state: dict | None = None) -> torch.Tensor:
    size, ch, up = rep
    key = (src, size, ch, up if src == "fer" else "")
    if key not in W["cache"]:
        data: Data = W["data"]
        if src == "fer" and up == "sr":
            x = apply_sr(sr_state, data.rep("fer", size, "gray", "cubic"), W["device"])
            x = np.repeat(x[..., None], 3, 3) if ch == "rgb" else x
        else:
            x = data.rep(src, size, ch, up)
        W["cache"][key] = to_device(x, W["device"])
    return W["cache"][key]


def _six(y: torch.Tensor) -> torch.Tensor:
    return y - (y > NEUTRAL).long()


def labelled(shares: dict, fold: int, rep: tuple, k: int, sr: dict | None) -> list[Source]:
    data: Data = W["data"]
    out = []
    for name, share in shares.items():
        y = torch.from_numpy(np.asarray(data.y[name])).to(W["device"])
        pool = np.arange(data.n[name]) if name == "fer" else data.split(name, fold)[0]
        if k == 6:
            pool = pool[np.asarray(data.y[name])[pool] != NEUTRAL]
            y = _six(y)
        out.append(Source(name, rep_x(name, rep, sr), share, y=y, pool=torch.from_numpy(pool).to(W["device"])))
    return out


def evaluate(model: torch.nn.Module, rep: tuple, fold: int, k: int, sr: dict | None = None) -> tuple[dict, dict]:
    data: Data = W["data"]
    classes = CLASSES7 if k == 7 else tuple(c for c in CLASSES7 if c != "neutral")
    metrics, logits = {}, {}
    for name in ("sfew", "ck", "fert"):
        idx = data.scored(name, fold)
        y = np.asarray(data.y[name])[idx]
        if k == 6:
            keep = y != NEUTRAL
            idx, y = idx[keep], y[keep] - (y[keep] > NEUTRAL)
        z = logits_of(model, rep_x(name, rep, sr)[torch.from_numpy(idx).to(W["device"])]).cpu().numpy()
        metrics[name], logits[name] = scores(z, y, classes), z.astype(np.float16)
    return metrics, logits


def teacher_probs(members: list, src: str, idx: np.ndarray | None = None) -> torch.Tensor:
    """Softmax of the members' mean log-probabilities (mirror view), each member on its own input."""
    total = None
    for rep, state in members:
        m = _model_from(state, rep)
        x = rep_x(src, rep, W.get("sr"))
        if idx is not None:
            x = x[torch.from_numpy(idx).to(W["device"])]
        lp = torch.log_softmax(logits_of(m, x), 1)
        total = lp if total is None else total + lp
    return torch.softmax(total / len(members), 1)


def _model_from(state: dict, rep: tuple) -> torch.nn.Module:
    from gpu_train import make_model

    m = make_model(state["head.weight"].shape[0], 1 if rep[1] == "gray" else 3, W["device"])
    m.load_state_dict(state)
    return m


def run_job(spec: dict) -> dict:
    t0 = time.time()
    try:
        out = _run(spec)
    except Exception:  # one job's failure is a result, not the end of the run
        return {"id": spec["id"], "error": traceback.format_exc()[-3000:], "seconds": time.time() - t0}
    out |= {
        "seconds": round(time.time() - t0, 1),
        "id": spec["id"],
        "rep": spec.get("rep"),
        "rep_choice": spec.get("rep_choice"),
    }
    return out


def _run(spec: dict) -> dict:
    data: Data = W["data"]
    dev, kind, hp = W["device"], spec["kind"], spec["hp"]
    if kind == "probe":
        return _probe(spec["seconds_budget"], hp)
    if kind == "sr":
        state, psnr = train_sr(data, 0, dev, steps=spec["steps"])
        return {"sr_state": state, "psnr": psnr}
    W["sr"] = spec.get("sr_state")
    rep, fold, seed, k = tuple(spec["rep"]), spec["fold"], spec["seed"], spec.get("k", 7)
    epochs, info, init = spec["epochs"], {}, None
    if spec.get("init"):
        if W["init"] is None:
            raise FileNotFoundError("bundled_init.pt is missing from the pack")
        init, hp = W["init"], dict(hp, lr=hp["lr_ft"])
    if kind == "plain":
        stages = [Stage(epochs, labelled(spec["shares"], fold, rep, k, W["sr"]))]
    elif kind == "prog":
        stages, info = _progressive(spec, rep, fold)
    elif kind in ("pseudo_thresh", "pseudo_robust"):
        srcs = labelled({"fer": 0.60, "sfew": 0.15, "ck": 0.10}, fold, rep, 7, None)
        p = teacher_probs([(rep, spec["teacher"])], "clip")
        conf, lab = p.max(1)
        if kind == "pseudo_thresh":
            keep = torch.nonzero(conf >= 0.7).flatten()
            srcs.append(Source("clip", rep_x("clip", rep), 0.15, y=lab, pool=keep))
        else:
            keep = torch.arange(len(p), device=dev)
            srcs.append(Source("clip", rep_x("clip", rep), 0.15, soft=p, kind="pseudo_robust"))
        info = {
            "clip_faces": len(p),
            "clip_used": len(keep),
            "teacher_clip_labels": torch.bincount(lab, minlength=7).tolist(),
        }
        stages = [Stage(epochs, srcs)]
    elif kind == "distill":
        stages, info = _distill_sources(spec, rep, fold)
    else:
        raise ValueError(kind)
    model, log = fit(stages, k, 1 if rep[1] == "gray" else 3, hp, seed, spec["hard_stop"], dev, init)
    metrics, logits = evaluate(model, rep, fold, k, W["sr"])
    if kind == "distill":
        info["teacher"] = _teacher_eval(spec["members"], fold)
    state = {k_: v.detach().cpu() for k_, v in model.state_dict().items()}
    return {"metrics": metrics, "logits": logits, "log": log, "info": info, "state": state}


def _progressive(spec: dict, rep: tuple, fold: int) -> tuple[list[Stage], dict]:
    data: Data = W["data"]
    fm = _model_from(spec["teacher"], rep)
    fer_x, dev = rep_x("fer", rep), W["device"]
    tr_sfew = data.split("sfew", fold)[0]
    target = torch.cat(
        [embed(fm, rep_x("sfew", rep)[torch.from_numpy(tr_sfew).to(dev)]), embed(fm, rep_x("clip", rep))]
    )
    target = torch.nn.functional.normalize(target, dim=1)
    rel = []
    for i in range(0, len(fer_x), 4096):
        e = torch.nn.functional.normalize(embed(fm, fer_x[i : i + 4096]), dim=1)
        rel.append((e @ target.T).topk(10, dim=1).values.mean(1))
    rel = torch.cat(rel)
    order = torch.argsort(rel, descending=True)  # most film-like first
    kept = order[: int(0.85 * len(order))]  # relevance threshold: the least similar 15 % never train
    chunks = torch.chunk(kept, 3)
    gen = torch.Generator(device="cpu").manual_seed(spec["seed"])
    base = labelled({"sfew": 0.15, "ck": 0.10}, fold, rep, 7, None)
    y = torch.from_numpy(np.asarray(data.y["fer"])).to(dev)
    stages, e = [], spec["epochs"]
    for s, chunk in enumerate(chunks):
        srcs = list(base)
        if s == 0:
            srcs.append(Source("fer", fer_x, 0.75, y=y, pool=chunk))
        else:
            earlier = torch.cat(chunks[:s])
            memory = earlier[torch.randperm(len(earlier), generator=gen)[: int(0.3 * len(earlier))].to(dev)]
            srcs += [
                Source("fer", fer_x, 0.75 * 0.7, y=y, pool=chunk),
                Source("fer_mem", fer_x, 0.75 * 0.3, y=y, pool=memory),
            ]
        stages.append(Stage(round(e * (s + 1) / 3), srcs))
    yk = np.asarray(data.y["fer"])
    info = {
        "relevance_threshold": float(rel[kept[-1]]),
        "chunk_class_counts": [np.bincount(yk[c.cpu().numpy()], minlength=7).tolist() for c in chunks],
        "dropped_class_counts": np.bincount(yk[order[len(kept) :].cpu().numpy()], minlength=7).tolist(),
    }
    return stages, info


def _distill_sources(spec: dict, rep: tuple, fold: int) -> tuple[list[Stage], dict]:
    data: Data = W["data"]
    members, dev = spec["members"], W["device"]
    srcs = []
    for name, share in (("fer", 0.65), ("sfew", 0.15), ("ck", 0.08)):
        pool = np.arange(data.n[name]) if name == "fer" else data.split(name, fold)[0]
        soft = torch.zeros(data.n[name], 7, device=dev)
        soft[torch.from_numpy(pool).to(dev)] = teacher_probs(members, name, pool)
        y = torch.from_numpy(np.asarray(data.y[name])).to(dev)
        srcs.append(
            Source(
                name,
                rep_x(name, rep, W["sr"]),
                share,
                y=y,
                soft=soft,
                kind="distill",
                pool=torch.from_numpy(pool).to(dev),
            )
        )
    srcs.append(Source("clip", rep_x("clip", rep), 0.12, soft=teacher_probs(members, "clip"), kind="distill"))
    return [Stage(spec["epochs"], srcs)], {"members": len(members)}


def _teacher_eval(members: list, fold: int) -> dict:
    data: Data = W["data"]
    out = {}
    for name in ("sfew", "ck", "fert"):
        idx = data.scored(name, fold)
        if len(idx) == 0:
            continue
        p = teacher_probs(members, name, idx).log().cpu().numpy()
        out[name] = scores(p, np.asarray(data.y[name])[idx], CLASSES7)
    return out


def _probe(seconds: float, hp: dict) -> dict:
    """Training images/s of one worker at 64 px gray (batch, augmentation and EMA as the real jobs)."""
    data: Data = W["data"]
    srcs = [
        Source(
            "fer",
            rep_x("fer", (64, "gray", "cubic")),
            1.0,
            y=torch.from_numpy(np.asarray(data.y["fer"])).to(W["device"]),
        )
    ]
    t = time.time()
    hp = dict(hp, epoch_size=hp["batch"] * 20)
    n = 0
    while time.time() - t < seconds:
        fit([Stage(1, srcs)], 7, 1, hp, 0, time.time() + 60, W["device"])
        n += hp["epoch_size"]
    return {"images_per_s": n / (time.time() - t)}
