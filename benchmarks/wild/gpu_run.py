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
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src")]  # the GPU image has no ferkit install

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gpu_data import data_root, decode_pack  # noqa: E402
from gpu_jobs import ARMS_B, ARMS_C, FT_ARMS, HP, init_worker, run_job  # noqa: E402

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
    root = data_root(a.pack, a.smoke)
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
