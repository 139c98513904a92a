"""``ferkit corpus run`` speed on the 20 shared clips: sparse decoding options, the decode-only floor, analysis over
decoding, and whole runs (local pool vs Ray, 1 and 2 workers) at every 10th and every 100th frame.

    python benchmarks/corpus_speed.py [--root ../shared/data/clips] [--reps 3] [--no-ray]

* ``decode``: wall seconds to go through the clips (one process) with PyAV as ``iter_video`` does every frame
  (threaded decoding, no conversion), and with :func:`ferkit.media.video.iter_every` in each skip mode (``all``:
  decode all, convert the samples; ``nonref``: also drop non-reference frames that are not samples; ``seek``: also
  jump to the keyframe before a sample when it is past the decoder). Minimum of ``--reps``.
* ``analysis_over_decode``: one process, models loaded: analysing the samples (decode + detect + track + score) over
  the decode-only time of the same sampling (the issue's target: ≤ 1.3× at every 100th frame): minima over
  ``--reps`` interleaved pairs, and the median of the pairs' ratios.
* ``runs``: ``ferkit corpus run`` end to end (a fresh folder, CLI process start, worker spawn and model loads
  included) per engine/workers/sampling: wall seconds, video-minutes analysed per wall-minute, the workers' own
  seconds (sum over videos), and the peak resident memory of each worker process (from the run log).

* ``film``: the same decode and analysis-over-decode figures on a film-like stream: the 60 s clip
  ``edtalk_pose_source2.mp4`` upscaled to 1280×720 and re-encoded with libx264 (default GOP 250, B-frames), where
  decoding costs what it costs in real films (the clips are 256×256, where decoding is nearly free and the
  per-sample analysis dominates).

Results: printed + benchmarks/results/corpus_speed.json (``--parts`` reruns some parts and keeps the others).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "corpus_clips.csv"


def _clips(root: Path) -> list[Path]:
    import csv

    with open(MANIFEST) as fh:
        return [root / r["path"] for r in csv.DictReader(fh)]


def _best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(min(times), 3)


def decode_times(files: list[Path], reps: int) -> dict:
    import av

    from ferkit.media.video import SKIP_MODES, iter_every

    def full() -> None:
        for f in files:
            with av.open(str(f)) as c:
                s = c.streams.video[0]
                s.thread_type = "AUTO"
                for _ in c.decode(s):
                    pass

    out: dict = {"every_frame_decode_s": _best(full, reps)}
    for every in (10, 100):
        for mode in SKIP_MODES:
            out[f"every{every}_{mode}_s"] = _best(
                lambda e=every, m=mode: [sum(1 for _ in iter_every(f, e, m)) for f in files], reps
            )
    return out


def analysis_over_decode(files: list[Path], reps: int) -> dict:
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.analysis.setup import make_analyzer
    from ferkit.media.video import iter_every

    out = {}
    for every in (10, 100):
        analyzer = make_analyzer("ferkit", AnalyzeOptions(every=every))
        list(analyzer.iter_source(files[0]))  # warm: detector and model sessions
        dec, ana = [], []
        for _ in range(reps):  # interleaved, so a change of the machine's load hits both alike
            dec.append(_best(lambda e=every: [sum(1 for _ in iter_every(f, e)) for f in files], 1))
            ana.append(_best(lambda a=analyzer: [sum(1 for _ in a.iter_source(f)) for f in files], 1))
        ratios = sorted(a / d for a, d in zip(ana, dec, strict=True))
        out[f"every{every}"] = {"decode_s": min(dec), "analyse_s": min(ana), "ratio": round(min(ana) / min(dec), 2)}
        out[f"every{every}"]["median_pair_ratio"] = round(ratios[len(ratios) // 2], 2)
    return out


def film_copy(root: Path, dst: Path, size: tuple[int, int] = (1280, 720)) -> Path:
    """The 60 s clip upscaled to ``size`` and re-encoded with libx264 (veryfast, default GOP and B-frames)."""
    import av

    with av.open(str(root / "edtalk_pose_source2.mp4")) as src, av.open(str(dst), "w") as out:
        s = src.streams.video[0]
        enc = out.add_stream("libx264", rate=s.average_rate, options={"preset": "veryfast", "crf": "23"})
        enc.width, enc.height, enc.pix_fmt = size[0], size[1], "yuv420p"
        for i, frame in enumerate(src.decode(s)):
            big = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            big.pts, big.time_base = i, 1 / s.average_rate
            out.mux(enc.encode(big))
        out.mux(enc.encode())
    return dst


def one_run(root: Path, engine: str, workers: int, every: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [
            sys.executable,
            "-m",
            "ferkit.cli",
            "corpus",
            "run",
            str(MANIFEST),
            "--root",
            str(root),
            "--out",
            str(out),
        ]
        cmd += ["--every", str(every), "--engine", engine, "--workers", str(workers)]
        t = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603
        wall = time.perf_counter() - t
        if res.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {res.stderr[-2000:]}")
        log = [json.loads(line) for line in (out / "run_log.jsonl").read_text().splitlines()]
    done = [e for e in log if e["event"] == "done"]
    peaks: dict[int, float] = {}
    for e in done:
        peaks[e["worker"]] = max(peaks.get(e["worker"], 0.0), e["peak_rss_mb"])
    work = round(sum(e["seconds"] for e in done), 2)
    return {"engine": engine, "workers": workers, "every": every, "wall_s": round(wall, 2), "videos": len(done),
            "worker_seconds": work, "peak_rss_mb_per_worker": sorted(peaks.values())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=HERE.parent.parent / "shared" / "data" / "clips")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "corpus_speed.json")
    ap.add_argument("--parts", default="decode,analysis,runs,film", help="Comma-separated parts to (re)measure.")
    args = ap.parse_args()
    from ferkit.media.video import video_info

    parts = set(args.parts.split(","))
    files = _clips(args.root)
    minutes = sum(video_info(f).duration or 0 for f in files) / 60
    doc: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    doc["machine"] = f"{platform.machine()}, {os.cpu_count()} cores (shared)"
    doc["clips"], doc["video_minutes"] = len(files), round(minutes, 3)
    doc.setdefault("commands", {})
    cmd = " ".join(["python", "benchmarks/corpus_speed.py", *sys.argv[1:]])
    if "decode" in parts:
        doc["decode"], doc["commands"]["decode"] = decode_times(files, args.reps), cmd
        print(json.dumps(doc["decode"], indent=1))
    if "analysis" in parts:
        doc["analysis_over_decode"] = analysis_over_decode(files, args.reps)
        doc["commands"]["analysis_over_decode"] = cmd
        print(json.dumps(doc["analysis_over_decode"], indent=1))
    if "runs" in parts:
        runs = []
        for every in (10, 100):
            for engine, workers in (("local", 1), ("local", 2), *([] if args.no_ray else [("ray", 2)])):
                r = one_run(args.root, engine, workers, every)
                r["video_min_per_wall_min"] = round(minutes / (r["wall_s"] / 60), 1)
                r["video_min_per_worker_min"] = round(minutes / (r["worker_seconds"] / 60), 1)
                runs.append(r)
                print(json.dumps(r))
        doc["runs"], doc["commands"]["runs"] = runs, cmd
    if "film" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            film = film_copy(args.root, Path(tmp) / "film720.mp4")
            doc["film"] = {"video": "edtalk_pose_source2.mp4 as 1280x720 libx264, 60 s, 1499 frames"}
            doc["film"] |= {"decode": decode_times([film], args.reps), **analysis_over_decode([film], args.reps)}
        doc["commands"]["film"] = cmd
        print(json.dumps(doc["film"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
