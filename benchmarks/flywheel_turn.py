"""One turn of the curation flywheel (issue 15 item 4, docs/speech_action.md): mine, curate by script, export.

    python benchmarks/flywheel_turn.py --work runs/flywheel     # then train configs/extended/*.toml on its export

1. ``ferkit mine ../shared/data/clips --aus`` into ``WORK/queue`` (a rerun continues; a finished queue is kept).
2. The queue is curated **through the browser page** (``ferkit curate``'s Starlette app in headless Debian chromium,
   driven by Playwright with the keyboard, as a person would), with a policy fixed before looking at the faces:
   a face with a hard-case rule hit gets ``hard_case``; else one the AU rules flag as speaking over an emotional upper
   face gets ``speech_action``; else the model's guess is accepted (Enter) when its confidence is at least
   ``--accept``; every other face is skipped (Space) and left unlabelled.
3. The labels are exported (``WORK/dataset/<label>/<id>.png`` + ``labels.csv``) for training.

Never touches ``../shared/data/video_labelled`` (evaluation only). Results: benchmarks/results/flywheel_turn.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "flywheel_turn.json"
sys.path.insert(0, str(HERE))

from curation_support import chromium, face_shown, press  # noqa: E402

from ferkit.curation.export import export  # noqa: E402
from ferkit.curation.mine import MineOptions, mine  # noqa: E402
from ferkit.curation.queue import Queue  # noqa: E402
from ferkit.curation.server import class_keys, serve_in_thread  # noqa: E402
from ferkit.labels.taxonomy import load_taxonomy  # noqa: E402


def decide(face: dict, accept: float) -> tuple[str, str]:
    """The policy: (action, why) with action a label, ``accept`` (the model's guess) or ``skip``."""
    rules = json.loads(face["hard_case_rules"] or "null") or []
    if rules:
        return "hard_case", "rule " + "+".join(sorted(rules))
    if face["speech_action"]:
        return "speech_action", "speech_action flag"
    if face["confidence"] is not None and face["confidence"] >= accept:
        return "accept", f"confidence ≥ {accept}"
    return "skip", "unsure"


def curate_by_script(queue: Queue, dataset: Path, accept: float) -> dict:
    """Label the queue through the page with :func:`decide`; each face is decided once (skips go to the end)."""
    from playwright.sync_api import sync_playwright

    exe = chromium()
    if exe is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    tax = load_taxonomy("extended12")
    keys = {k["label"]: k["key"] for k in class_keys(tax)}
    faces = {r["id"]: dict(r) for r in queue.query("SELECT * FROM faces")}
    done: dict[str, tuple[str, str]] = {}
    url, stop = serve_in_thread(queue, tax, dataset)
    t0 = time.perf_counter()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            shown = face_shown(page)
            while shown and shown not in done:
                action, why = decide(faces[shown], accept)
                done[shown] = (action, why)
                key = {"accept": "Enter", "skip": "s"}.get(action) or keys[action]
                shown = press(page, key)
            browser.close()
    finally:
        stop()
    seconds = time.perf_counter() - t0
    labels = {r["face_id"]: r["label"] for r in queue.query("SELECT face_id, label FROM labels")}
    accepted = Counter(labels[f] for f, (a, _) in done.items() if a == "accept")
    return {
        "policy": {
            "hard_case": "any hard-case rule hit",
            "speech_action": "the AU rules' speech_action flag",
            "accept": f"the model's guess when its confidence ≥ {accept}",
            "skip": "everything else",
        },
        "faces": len(faces),
        "decided": len(done),
        "actions": dict(Counter(a for a, _ in done.values())),
        "why": dict(Counter(w for _, w in done.values())),
        "accepted_guesses_by_label": dict(accepted),
        "labels": dict(Counter(labels.values())),
        "labels_by_source": {
            src: dict(Counter(labels[f] for f in labels if Path(faces[f]["source"]).stem == src))
            for src in sorted({Path(faces[f]["source"]).stem for f in labels})
        },
        "seconds_in_browser": round(seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="queue and dataset go here")
    ap.add_argument("--clips", type=Path, default=DATA / "clips")
    ap.add_argument("--accept", type=float, default=0.8, help="accept the model's guess at this confidence")
    args = ap.parse_args()
    qdir, dataset = args.work / "queue", args.work / "dataset"
    t0 = time.perf_counter()
    mine([args.clips], qdir, MineOptions(aus=True))  # a rerun on a finished queue is a quick no-op
    seconds = round(time.perf_counter() - t0)
    result: dict = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with Queue(qdir) as q:
        rows = q.query("SELECT faces, candidates, dropped FROM sources")
        dropped: Counter = Counter()
        for r in rows:
            dropped.update(json.loads(r["dropped"]))
        result["mine"] = {
            "sources": len(rows),
            "faces_seen": sum(r["faces"] for r in rows),
            "candidates": sum(r["candidates"] for r in rows),
            "queued": q.query("SELECT COUNT(*) FROM faces")[0][0],
            "dropped": dict(dropped),
            "seconds_this_run": seconds,
        }
        if not q.query("SELECT COUNT(*) FROM labels")[0][0]:  # the curation is done once; a rerun keeps its record
            result["curate"] = curate_by_script(q, dataset, args.accept)
        exp = export(q, dataset, load_taxonomy("extended12"))
    result["export"] = {"dataset": str(dataset), "written_this_run": exp.written, "already": exp.already}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
