"""Issue 19's stand-in for the stock-photo pipeline, end to end and offline: pull → extract-faces → weak labels →
fine-tune → evaluate, with single- and multi-keyword queries compared.

    python benchmarks/stock_pipeline.py data     # catalogue, replay server, pull ×2, extract ×2, label precision
    ferkit train configs/stock/1_fer_resnet18_small.toml          # FER-trained backbone (once)
    ferkit train configs/stock/2_stock_multi.toml; ferkit train configs/stock/3_stock_single.toml
    python benchmarks/stock_pipeline.py evaluate # ferkit evaluate on held-out SFEW photos and FER2013 test
    (docs/stock_photos.md runs each fine-tune with seeds 0-2: --set seed=N --set name=stock_2_multi_sN, then
    `evaluate --runs stock_1_fer_resnet18_small stock_2_multi_s0 ... stock_3_single_s2`)

No stock API can be reached here, so ``ferkit.stock.replay`` serves SFEW and FER2013 train images of the five
classes as a catalogue: every image gets three keywords, each drawn from its own class's five words with
probability 0.8 and from another class's words otherwise (``--wrong 0.2``: deliberately wrong tags), plus
"face"/"portrait"; a search returns the images that carry every keyword of the query; 5 % of the catalogue repeats
another photo's bytes under a new id. A quarter of SFEW (by file-name hash) is held out of the catalogue as the
evaluation photos. Results: benchmarks/results/stock_pipeline.json (the ``data`` and ``evaluate`` blocks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from ferkit.stock.client import Client  # noqa: E402
from ferkit.stock.config import load_pull_config  # noqa: E402
from ferkit.stock.extract import ExtractOptions, extract_faces  # noqa: E402
from ferkit.stock.pull import pull  # noqa: E402
from ferkit.stock.replay import CatalogueItem, ReplayServer  # noqa: E402

CLASSES = ("angry", "fear", "happy", "sad", "surprise")
VOCAB = {
    "angry": ["angry", "furious", "mad", "annoyed", "rage"],
    "fear": ["scared", "afraid", "fearful", "frightened", "terrified"],
    "happy": ["happy", "smiling", "joyful", "cheerful", "laughing"],
    "sad": ["sad", "unhappy", "crying", "sorrowful", "depressed"],
    "surprise": ["surprised", "shocked", "astonished", "amazed", "startled"],
}
KEY = "standin-key"


def _held_out(name: str) -> bool:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 4 == 0


def build_catalogue(
    data: Path, fer_per_class: int, wrong: float, seed: int, holdout: Path, sfew_per_class: int | None = None
) -> list[CatalogueItem]:
    """Tagged catalogue items over ``data`` (see the module doc); held-out SFEW photos are linked under ``holdout``."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    files: list[tuple[str, Path]] = []
    for cls in CLASSES:
        for p in sorted((data / "sfew" / "train" / cls).iterdir())[:sfew_per_class]:
            if _held_out(p.name):
                (holdout / cls).mkdir(parents=True, exist_ok=True)
                link = holdout / cls / p.name
                if not link.exists():
                    link.symlink_to(p)
            else:
                files.append((cls, p))
        files += [(cls, p) for p in sorted((data / "fer2013" / "train" / cls).iterdir())[:fer_per_class]]
    items = []
    for i, (cls, p) in enumerate(files):
        tags: list[str] = []
        while len(tags) < 3:
            own = rng.random() >= wrong
            src = cls if own else rng.choice([c for c in CLASSES if c != cls])
            word = rng.choice(VOCAB[src])
            if word not in tags:
                tags.append(word)
        w, h = (640, 800) if "sfew" in p.parts else (480, 480)
        items.append(CatalogueItem(10_000 + i, str(p.relative_to(data)), [*tags, "face", "portrait"], w, h, cls))
    for j, twin in enumerate(rng.sample(items, len(items) // 20)):  # the same bytes under another id
        items.append(CatalogueItem(90_000 + j, twin.file, list(twin.tags), twin.width, twin.height, twin.label))
    rng.shuffle(items)
    return items


def label_quality(faces: Path, raw: Path, truth: dict[str, str]) -> dict:
    """How the weak labels of ``faces`` (weak_tags over its tags.csv/rules.toml) compare with the true classes."""
    from ferkit.training.weak import weak_tag_source

    state = json.loads((faces / "faces.json").read_text())
    crop_truth = {}
    for rec in state["photos"].values():
        ids = [h["id"] for h in rec["hits"]]
        for f in rec["faces"]:
            crop_truth[f["crop"]] = truth[ids[0]]
    samples, weak = weak_tag_source(faces, faces / "tags.csv", faces / "rules.toml", "stock")
    right = sum(crop_truth[s.key.split(":", 1)[1]] == s.raw_label for s in samples)
    per_class = {c: sum(s.raw_label == c for s in samples) for c in CLASSES}
    precision = {
        c: round(sum(crop_truth[s.key.split(":", 1)[1]] == c for s in samples if s.raw_label == c) / n, 4)
        for c, n in per_class.items()
        if n
    }
    return {
        "labelled_crops": len(samples),
        "label_precision": round(right / len(samples), 4) if samples else None,
        "precision_per_class": precision,
        "labelled_per_class": per_class,
        "weak_report": weak.summary(),
    }


def data_stage(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    holdout = work / "sfew_holdout"
    items = build_catalogue(Path(args.data), args.fer_per_class, args.wrong, args.seed, holdout, args.sfew_per_class)
    truth = {str(it.id): it.label for it in items}
    wrong_tags = sum(w not in VOCAB[it.label] for it in items for w in it.tags[:3]) / (3 * len(items))
    out: dict = {"catalogue": {"images": len(items), "wrong_tag_share": round(wrong_tags, 4)}}
    with ReplayServer(Path(args.data), key=KEY, catalogue=items) as srv:
        for arm in ("single", "multi"):
            cfg = load_pull_config(ROOT / "configs" / "stock" / "pull" / f"{arm}.toml")
            t0 = time.time()
            res = pull("pixabay", cfg, work / f"raw_{arm}", base_url=srv.base_url, key=KEY, client=Client())
            t1 = time.time()
            rep = extract_faces(work / f"raw_{arm}", work / f"faces_{arm}", ExtractOptions(min_face=24))
            out[arm] = {
                "pull": {"counts": res.counts, "images": res.images_total, "seconds": round(t1 - t0, 1)},
                "extract": {k: rep[k] for k in ("photos", "faces_kept", "faces_per_photo", "dropped")},
                "extract_seconds": round(time.time() - t1, 1),
                "labels": label_quality(work / f"faces_{arm}", work / f"raw_{arm}", truth),
            }
            print(arm, json.dumps(out[arm]["labels"]), flush=True)
    return out


def evaluate_stage(args: argparse.Namespace) -> dict:
    """``ferkit evaluate`` of each run's model on the held-out SFEW photos and FER2013 test (five classes); runs named
    ``<arm>_s<seed>`` are also summarised per arm (mean and sample standard deviation over seeds)."""
    work, out = Path(args.work), {}
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    fer_test = str(Path(args.data) / "fer2013" / "test")
    sets = {"sfew_holdout": [str(work / "sfew_holdout")], "fer2013_test": [fer_test, "--crops"]}
    for run in args.runs:
        model = Path("runs") / run / "model"
        if not model.is_dir():
            print(f"{model}: missing, skipped", flush=True)
            continue
        for name, where in sets.items():
            rep = work / f"eval_{run}_{name}.json"
            cmd = [sys.executable, "-m", "ferkit.cli", "evaluate", *where, "--model", str(model), "--report", str(rep)]
            subprocess.run([*cmd, "--tta", "none"], check=True, env=env, capture_output=True)  # noqa: S603 - our CLI
            r = json.loads(rep.read_text())["results"][0]
            keep = ("n", "accuracy", "balanced_accuracy", "macro_f1")
            out[f"{run}/{name}"] = {k: round(r[k], 4) if isinstance(r[k], float) else r[k] for k in keep if k in r}
            print(run, name, out[f"{run}/{name}"], flush=True)
    arms: dict[str, list[str]] = {}
    for key in out:
        run, name = key.split("/")
        arms.setdefault(f"{re.sub(r'_s[0-9]+$', '', run)}/{name}", []).append(key)
    summary = {}
    for arm, keys in arms.items():
        if len(keys) > 1:
            summary[arm] = {"seeds": len(keys)}
            for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
                values = [out[k][metric] for k in keys]
                summary[arm][metric] = [round(statistics.mean(values), 4), round(statistics.stdev(values), 4)]
    return {"runs": out, "mean_sd_over_seeds": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("data", "evaluate"))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--work", default="runs/stock_standin")
    ap.add_argument("--fer-per-class", type=int, default=150)
    ap.add_argument("--sfew-per-class", type=int, default=None, help="fewer SFEW photos (a quick smoke run)")
    ap.add_argument("--wrong", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", nargs="+", default=["stock_1_fer_resnet18_small", "stock_2_multi", "stock_3_single"])
    ap.add_argument("--out", default=str(HERE / "results" / "stock_pipeline.json"))
    args = ap.parse_args()
    result_path = Path(args.out)
    results = json.loads(result_path.read_text()) if result_path.is_file() else {}
    block = data_stage(args) if args.stage == "data" else evaluate_stage(args)
    results[args.stage] = {"command": " ".join(["python", *sys.argv]), **block}
    result_path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {result_path}")


if __name__ == "__main__":
    main()
