"""Curation flywheel figures (docs/curation.md): mining throughput, queue size and drops on the shared clips; the
static-face filter on a clip with a pasted still face; labelling speed and page load in headless chromium.

    python benchmarks/curation.py                      # all parts, default sampling (5 fps), no AUs
    python benchmarks/curation.py --parts mine --aus   # mining with action units (slower)
    python benchmarks/curation.py --parts browser      # needs Debian's chromium and playwright

Results: printed, and merged into benchmarks/results/curation.json (one key per part).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
OUT = HERE / "results" / "curation.json"
sys.path.insert(0, str(HERE))

from curation_support import chromium, face_shown, paste_still_face, press, still_photo  # noqa: E402

from ferkit.curation.mine import MineOptions, mine  # noqa: E402
from ferkit.curation.queue import Queue, QueuedFace  # noqa: E402


def part_mine(clips: Path, work: Path, aus: bool) -> dict:
    """Mine every clip at the default sampling into a fresh queue; throughput in video-minutes per minute."""
    q = work / ("queue_aus" if aus else "queue")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    s = mine([clips], q, MineOptions(aus=aus))
    wall = time.perf_counter() - t0
    drops = {k: round(v / s.candidates, 4) for k, v in s.dropped.items()} if s.candidates else {}
    return {
        "clips": str(clips),
        "aus": aus,
        "fps": 5.0,
        "sources": s.sources,
        "video_minutes": round(s.video_seconds / 60, 3),
        "wall_minutes": round(wall / 60, 3),
        "video_minutes_per_minute": round(s.video_seconds / wall, 3),
        "cpus": os.cpu_count(),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # shared machine
        "faces_seen": s.faces_seen,
        "candidates": s.candidates,
        "queue_size": s.kept,
        "kept_reasons": dict(s.kept_reasons),
        "dropped": dict(s.dropped),
        "dropped_share_of_candidates": drops,
        "skipped": s.skipped,
    }


def part_static(work: Path) -> dict:
    """A still face (Obama clip's first frame, 150 px) pasted into woman_talking.mp4's first 10 s."""
    photo = still_photo(DATA / "clips" / "styletalk_Obama_clip1.mp4")
    clip = paste_still_face(DATA / "videos" / "woman_talking.mp4", photo, work / "poster.mp4", seconds=10.0)
    from ferkit.curation.filters import MineRules

    # every face a candidate and no near-duplicate filter: only the static filter decides
    s = mine([clip], work / "queue_static", MineOptions(rules=MineRules(min_confidence=1.01, dedupe_bits=-1)))
    with Queue(work / "queue_static") as q:
        xs = [json.loads(r[0])[0] for r in q.query("SELECT box FROM faces")]
    edge = 596 - photo.shape[1] - 10
    return {
        "faces_seen": s.faces_seen,
        "kept_real": sum(x < edge for x in xs),
        "kept_pasted": sum(x >= edge for x in xs),
        "dropped_static": s.dropped.get("static", 0),
    }


def synthetic_queue(src: Path, dst: Path, n: int) -> Path:
    """A queue of ``n`` faces made from the real crops of ``src`` (cycled), for page-load timing."""
    with Queue(src) as q:
        rows = q.query("SELECT * FROM faces")
    with Queue(dst, create=True) as out:
        for i in range(n):
            r = dict(rows[i % len(rows)])
            fid = f"{i:016x}"
            shutil.copyfile(Path(src) / "crops" / f"{r['id']}.png", out.crop_path(fid))
            shutil.copyfile(Path(src) / "context" / f"{r['id']}.jpg", out.context_path(fid))
            fields = {k: r[k] for k in QueuedFace.__dataclass_fields__ if k in r}
            for k in ("box", "probabilities", "models", "aus", "hard_case_rules", "reasons"):
                fields[k] = None if fields[k] is None else json.loads(fields[k])
            out.add_face(QueuedFace(**{**fields, "id": fid, "frame_index": i}))
    return dst


def part_browser(work: Path, mined: Path, labels: int, big: int) -> dict:
    """Labels per minute by keyboard (each press waits for the next face), and page load with ``big`` faces."""
    from playwright.sync_api import sync_playwright

    from ferkit.curation.server import serve_in_thread
    from ferkit.labels.taxonomy import load_taxonomy

    exe = chromium()
    if exe is None:
        raise SystemExit("no chromium on PATH: apt-get install chromium")
    tax = load_taxonomy("extended12")
    result: dict = {}
    large = synthetic_queue(mined, work / "queue_big", big)
    with Queue(large) as q, sync_playwright() as p:
        url, stop = serve_in_thread(q, tax, work / "dataset")
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("document.getElementById('crop').complete")
            loads.append(time.perf_counter() - t0)
        keys = "1234567890qw"
        t0 = time.perf_counter()
        for i in range(labels):
            press(page, keys[i % len(keys)])
        elapsed = time.perf_counter() - t0
        assert q.query("SELECT COUNT(*) FROM labels")[0][0] == labels
        assert face_shown(page)
        browser.close()
        stop()
    result.update(
        queued_faces=big,
        page_load_seconds_median=round(sorted(loads)[len(loads) // 2], 3),
        page_load_seconds_all=[round(x, 3) for x in loads],
        labels=labels,
        labels_per_minute=round(labels / elapsed * 60, 1),
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="mine,static,browser")
    ap.add_argument("--clips", type=Path, default=DATA / "clips")
    ap.add_argument("--aus", action="store_true", help="mine with action units (the part is stored as mine_aus)")
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--big", type=int, default=5000)
    ap.add_argument("--work", type=Path, default=None, help="keep the queues here (default: a temporary folder)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="ferkit-curation-"))
    work.mkdir(parents=True, exist_ok=True)
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    if "mine" in parts:
        key = "mine_aus" if args.aus else "mine"
        results[key] = part_mine(args.clips, work, args.aus)
        print(key, json.dumps(results[key], indent=1))
    if "static" in parts:
        results["static"] = part_static(work)
        print("static", results["static"])
    if "browser" in parts:
        mined = work / "queue"
        if not (mined / "queue.sqlite").is_file():
            mine([DATA / "clips" / "styletalk_feifeili_clip3.mp4"], mined)
        results["browser"] = part_browser(work, mined, args.labels, args.big)
        print("browser", results["browser"])
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
