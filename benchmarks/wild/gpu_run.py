"""The one prepared script for issue 18's large runs on a GPU: every ablation arm, ensembles, distilled students.

Plan (priority order; jobs that cannot start before the deadline are listed as not run):
  1. a small 48→64 super-resolution net (the learned upscaling arm);
  2. phase B, seed 0 then seed 1, each arm × 5 grouped folds (fold k holds out SFEW films of fold k and CK+
     subjects of fold k at once): fer48g (FER2013 only, 48 px gray: the baseline), mix48g (FER2013 + SFEW + CK+,
     per-source shares), mix64g_cubic / mix64g_lanczos / mix64g_sr (64 px, FER2013 upscaled three ways),
     mix64rgb_cubic (RGB input), mix64g_basic6 (six classes, no neutral);
  3. distilled students: per fold, an ensemble of that fold's phase-B models (they never saw its held-out films and
     subjects) teaches one vgg_small on the labelled images plus the unlabelled clip faces; then one final student
     on everything (the shipped candidate) and a final plain model of the same input as its fallback;
  4. phase C: progressive multi-source (FER2013 brought in by feature similarity to the film faces, the least
     similar 15 % dropped, a replay memory of earlier stages), pseudo-labelled clip faces with a confidence
     threshold (baseline) and with a robust objective (certainty-weighted GCE + entropy regulariser).
Every job scores its EMA weights (mirror view) on held-out SFEW, held-out CK+ and FER2013 test.

    python benchmarks/wild/gpu_run.py --pack .gpu --out $OUT --budget 520
    python benchmarks/wild/gpu_run.py --pack .gpu --out /tmp/w --smoke     # every code path, tiny, on CPU
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]  # the GPU image has no ferkit install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_data import CLASSES7, NEUTRAL, Data, decode_pack  # noqa: E402
from gpu_train import Source, Stage, apply_sr, embed, fit, logits_of, scores, to_device, train_sr  # noqa: E402

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
        idx = np.arange(data.n[name]) if name == "fert" else data.split(name, fold)[1]
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
        idx = np.arange(data.n[name]) if name == "fert" else data.split(name, fold)[1]
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


# ---------------------------------------------------------------------------------------------------- scheduling
COST = {48: (48 / 64) ** 2, 64: 1.0}  # relative training cost per image


def plan(folds: list[int], seeds: list[int], short: int, long: int) -> list[dict]:
    """Every job in priority order, with the ids it waits for."""
    jobs = [{"id": "sr", "kind": "sr", "deps": []}]

    def b(seed: int) -> list[dict]:
        return [
            {
                "id": f"B/{arm}/f{f}/s{seed}", "kind": "plain", "arm": arm, "fold": f, "seed": seed, "rep": list(a[:3]),
                "shares": a[3], "k": a[4], "epochs": short, "deps": ["sr"] if a[2] == "sr" else [],
                "init": arm in FT_ARMS,
            }
            for arm, a in ARMS_B.items() for f in folds
        ]  # fmt: skip

    def c(seed: int) -> list[dict]:
        kinds = {"prog64g": "prog", "pseudo_thresh": "pseudo_thresh", "pseudo_robust": "pseudo_robust"}
        return [
            {
                "id": f"C/{arm}/f{f}/s{seed}", "kind": kinds[arm], "arm": arm, "fold": f, "seed": seed,
                "rep": [64, "gray", "cubic"], "k": 7, "epochs": short, "deps": [f"B/mix64g_cubic/f{f}/s{seed}"],
            }
            for arm in ARMS_C for f in folds
        ]  # fmt: skip

    seed0 = [j["id"] for j in b(seeds[0]) if j["k"] == 7]
    finals = [
        {"id": "E/student/all", "kind": "distill", "arm": "student", "fold": -1, "seed": 0, "epochs": long,
         "deps": seed0},
        {"id": "E/student_ft/all", "kind": "distill", "arm": "student_ft", "fold": -1, "seed": 0, "epochs": long,
         "deps": seed0, "init": True, "rep": [48, "gray", "cubic"]},
        {"id": "E/plain/all", "kind": "plain", "arm": "plain_final", "fold": -1, "seed": 0, "epochs": long,
         "shares": ARMS_B["mix64g_cubic"][3], "k": 7, "deps": seed0},
    ]  # fmt: skip
    students = [
        {"id": f"D/{arm}/f{f}", "kind": "distill", "arm": arm, "fold": f, "seed": 0, "epochs": long,
         "deps": [i for i in seed0 if f"/f{f}/" in i]} | ({"init": True, "rep": [48, "gray", "cubic"]} if ft else {})
        for arm, ft in (("student", False), ("student_ft", True)) for f in folds
    ]  # fmt: skip
    jobs += b(seeds[0]) + finals + students + c(seeds[0])
    for s in seeds[1:]:
        jobs += b(s) + c(s)
    return jobs


def choose_rep(done: dict) -> tuple[list, dict]:
    """The student's input: the seven-class phase-B arm with the best mean of SFEW + FER2013 test + CK+/2 accuracy."""
    table: dict[str, list[float]] = {}
    for r in done.values():
        if r.get("kind") == "plain" and r.get("arm") in ARMS_B and ARMS_B[r["arm"]][4] == 7 and "metrics" in r:
            m = r["metrics"]
            table.setdefault(r["arm"], []).append(
                m["sfew"]["accuracy"] + m["fert"]["accuracy"] + m["ck"]["accuracy"] / 2
            )
    means = {a: float(np.mean(v)) for a, v in table.items() if a not in ("fer48g", *FT_ARMS)}
    best = max(means, key=means.get) if means else "mix64g_cubic"
    return list(ARMS_B[best][:3]), {"chosen": best, "scores": means}


def fill(job: dict, done: dict, sr_state: dict | None) -> dict:
    spec = dict(job)
    if (job.get("rep") and job["rep"][2] == "sr") or job["kind"] == "distill":
        spec["sr_state"] = sr_state
    if job["kind"] in ("prog", "pseudo_thresh", "pseudo_robust"):
        spec["teacher"] = done[job["deps"][0]]["state"]
    if job["id"].startswith(("E/", "D/")) and not job.get("rep"):
        spec["rep"], spec["rep_choice"] = choose_rep(done)
    if job["kind"] == "distill":
        spec["members"] = [(tuple(done[d]["rep"]), done[d]["state"]) for d in job["deps"] if "state" in done.get(d, {})]
    return spec


def write_json(path: Path, obj: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=Path(".gpu"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=520, help="seconds for the whole run, from its start")
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--short", type=int, default=12, help="epochs of every ablation arm")
    ap.add_argument("--long", type=int, default=30, help="epochs of the students and the final plain model")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run through every code path")
    ap.add_argument("--only", help="regular expression: run only the jobs whose id matches (and what they need)")
    a = ap.parse_args()
    t0 = time.time()
    t_end = t0 + a.budget
    device = "cuda" if torch.cuda.is_available() and not a.smoke else "cpu"
    folds, seeds = ([0, 1], [0, 1]) if a.smoke else ([0, 1, 2, 3, 4], [0, 1])
    workers = 2 if a.smoke else a.workers
    a.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.gettempdir()) / ("wild_smoke" if a.smoke else "wild_data")
    decode_pack(a.pack, root, limit=1500 if a.smoke else None)
    meta = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "torch": torch.__version__,
        "workers": workers, "folds": folds, "seeds": seeds, "short": a.short, "long": a.long, "hp": HP,
        "decode_s": round(time.time() - t0, 1),
    }  # fmt: skip
    hp = dict(HP, batch=64, epoch_size=256) if a.smoke else dict(HP)
    jobs = plan(folds, seeds, 1 if a.smoke else a.short, 1 if a.smoke else a.long)
    if a.only:
        keep = {j["id"] for j in jobs if re.search(a.only, j["id"])}
        for j in reversed(jobs):
            if j["id"] in keep:
                keep |= set(j["deps"])
        jobs = [j for j in jobs if j["id"] in keep]
    done: dict[str, dict] = {}
    logits: dict[str, np.ndarray] = {}
    finals: dict[str, dict] = {}  # sr net and the final models (fp32)
    arms: dict[str, dict] = {}  # fold 0 / seed 0 model of every arm (fp16)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(
        workers,
        ctx,
        initializer=init_worker,
        initargs=(str(root), device, a.smoke, str(a.pack / "b" / "bundled_init.pt")),
    ) as pool:
        probes = [
            pool.submit(run_job, {"id": f"probe{i}", "kind": "probe", "hp": hp, "seconds_budget": 2 if a.smoke else 12})
            for i in range(workers)
        ]
        probed = [f.result() for f in probes]
        rates = [r.get("images_per_s", 0.0) for r in probed]
        if not all(rates):
            sys.exit("probe failed: " + next(r.get("error", "") for r in probed if not r.get("images_per_s")))
        total_rate = float(sum(rates))
        work = sum(j.get("epochs", 0) * COST[j.get("rep", [64])[0]] for j in jobs)
        left = t_end - time.time()
        if not a.smoke:
            hp["epoch_size"] = int(os.environ.get("EPOCH_SIZE") or np.clip(0.8 * total_rate * left / work, 3000, 24000))
        meta |= {
            "probe_images_per_s": rates,
            "epoch_size": hp["epoch_size"],
            "planned_work_epochs": work,
            "start_left_s": left,
        }
        print(json.dumps(meta), flush=True)
        per_worker = total_rate / workers
        pending, running = list(jobs), {}
        while pending or running:
            for job in list(pending):
                if len(running) >= workers:
                    break
                deps = [done.get(d) for d in job["deps"]]
                if any(d is None for d in deps):  # waiting (or a dependency never ran)
                    alive = {j["id"] for j in running.values()} | {p["id"] for p in pending}
                    if any(d not in done and d not in alive for d in job["deps"]):
                        pending.remove(job)
                        done[job["id"]] = {**job, "skipped": "a dependency did not run"}
                    continue
                if job["kind"] in ("prog", "pseudo_thresh", "pseudo_robust") and "state" not in deps[0]:
                    pending.remove(job)
                    done[job["id"]] = {**job, "skipped": "its teacher failed"}
                    continue
                est = job.get("epochs", 1) * hp["epoch_size"] * COST[job.get("rep", [64])[0]] / max(per_worker, 1.0)
                if time.time() + 0.6 * est > t_end:
                    pending.remove(job)
                    done[job["id"]] = {
                        **job,
                        "skipped": f"not started: {est:.0f} s estimated, {t_end - time.time():.0f} s left",
                    }
                    continue
                spec = fill(job, done, done.get("sr", {}).get("sr_state"))
                spec |= {"hp": hp, "hard_stop": t_end - 8, "steps": 60 if a.smoke else 1500}
                running[pool.submit(run_job, spec)] = job
                pending.remove(job)
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                r = fut.result()
                rec = {**job, **r}
                done[job["id"]] = rec
                for name, z in (r.get("logits") or {}).items():
                    logits[f"{job['id'].replace('/', '__')}__{name}"] = z
                status = r.get("error", "").splitlines()[-1:] or [
                    json.dumps({k: (v or {}).get("accuracy") for k, v in r.get("metrics", {}).items()})
                ]
                print(
                    f"[{time.time() - t0:6.1f}s] {job['id']} {r.get('seconds')}s "
                    f"{r.get('log', {}).get('epochs_done')} ep {status[0]}",
                    flush=True,
                )
                if (job["id"] == "sr" and "sr_state" in r) or (job["id"].startswith("E/") and "state" in r):
                    finals[job["id"]] = {"state": r.get("state") or r["sr_state"], "rep": r.get("rep"), "hp": hp}
                    torch.save(finals, a.out / "finals.tmp")
                    os.replace(a.out / "finals.tmp", a.out / "finals.pt")
                if job.get("fold") == 0 and job.get("seed") == 0 and "state" in r:  # one model per arm, for the clips
                    arms[job["id"]] = {"state": {k: v.half() for k, v in r["state"].items()}, "rep": r.get("rep")}
                    _save_arms(a.out, arms)
            _save(a.out, done, logits, meta, t0)
    _save(a.out, done, logits, meta, t0)
    print(f"done in {time.time() - t0:.0f} s", flush=True)


def _save_arms(out: Path, arms: dict, limit: int = 14 * 2**20) -> None:
    """The arms' models in files of at most ``limit`` bytes (what a GPU call can bring back per file)."""
    parts: list[dict] = [{}]
    size = 0
    for k, v in arms.items():
        n = sum(t.numel() * t.element_size() for t in v["state"].values())
        if size + n > limit:
            parts.append({})
            size = 0
        parts[-1][k] = v
        size += n
    for i, part in enumerate(parts):
        torch.save(part, out / "arms.tmp")
        os.replace(out / "arms.tmp", out / f"arms_{i}.pt")


def _save(out: Path, done: dict, logits: dict, meta: dict, t0: float) -> None:
    slim = {
        k: {kk: vv for kk, vv in v.items() if kk not in ("state", "logits", "sr_state", "members", "teacher")}
        for k, v in done.items()
    }
    write_json(out / "results.json", {"meta": meta | {"elapsed_s": round(time.time() - t0, 1)}, "jobs": slim})
    tmp = out / "logits.tmp.npz"
    np.savez_compressed(tmp, **logits)
    os.replace(tmp, out / "logits.npz")


if __name__ == "__main__":
    main()
