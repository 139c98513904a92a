"""``ferkit corpus run`` speed on the 20 shared clips: sparse decoding options, the decode-only floor, analysis over
decoding, and whole runs (local pool vs Ray, 1 and 2 workers) at every 10th and every 100th frame.

    python benchmarks/corpus_speed.py [--root ../shared/data/clips] [--reps 3] [--no-ray]

* ``decode``: wall seconds to go through the clips (one process) with PyAV as ``iter_video`` does every frame
  (threaded decoding, no conversion), and with :func:`ferkit.media.video.iter_every` in each skip mode (``all``:
  decode all, convert the samples; ``nonref``: also drop non-reference frames that are not samples; ``seek``: also
  jump to the keyframe before a sample when it is past the decoder). Minimum of ``--reps``.
* ``analysis_over_decode``: one process, models loaded, the corpus run's options: analysing the samples (decode +
  detect + track + score: ``analyse``) and the corpus worker's whole path per video (that plus resume bookkeeping and
  writing the Parquet part: ``corpus``) over the decode-only time of the same sampling (the issue's target: ≤ 1.3×
  at every 100th frame): minima over ``--reps`` interleaved triples, and the median of the pairs' ratios; and the
  per-sample cost of each stage at every 100th frame (one pass under cProfile).
* ``runs``: ``ferkit corpus run`` end to end (a fresh folder, CLI process start, worker spawn and model loads
  included) per engine/workers/sampling: wall seconds, video-minutes analysed per wall-minute, the workers' own
  seconds (sum over videos; since the segments commit, without each worker's setup on its first task, which is
  summed apart), and the peak resident memory of each worker process (from the run log).

* ``film``: the same decode and analysis-over-decode figures on a film-like stream: the 60 s clip
  ``edtalk_pose_source2.mp4`` upscaled to 1280×720 and re-encoded with libx264 (default GOP 250, B-frames), where
  decoding costs what it costs in real films (the clips are 256×256, where decoding is nearly free and the
  per-sample analysis dominates).

* ``segments``: the 60 s clip analysed whole and in 0.1-minute segments (``--segment-minutes``) at every 10th, 25th
  and 100th frame: the rows whose per-frame fields, smoothed probabilities or smoothed label differ, and the tracks.

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


def corpus_jobs(files: list[Path], out: Path, every: int) -> list:
    """The tasks ``ferkit corpus run`` would give its workers for ``files`` (planned into ``out``: hashed, headers
    read), so the benchmark can time the worker's own path per video in this process."""
    from ferkit.corpus.jobs import RunSpec
    from ferkit.corpus.manifest import load_manifest
    from ferkit.corpus.run import RunLog, RunSummary, run_settings_of

    (out / ".work").mkdir(parents=True, exist_ok=True)
    (out / "records").mkdir(exist_ok=True)
    (out / "m.csv").write_text("path,title\n" + "".join(f"{f},v{i}\n" for i, f in enumerate(files)))
    spec = RunSpec(every=every)
    settings, _ = run_settings_of(spec)
    args = (load_manifest(out / "m.csv"), out, spec, settings, RunLog(out / "log.jsonl"), RunSummary(out))
    try:
        from ferkit.corpus.planning import plan

        return [j for p in plan(*args) for j in p.todo]
    except ImportError:  # before the planning module (commit 23aaff2): plan returned the jobs
        from ferkit.corpus.run import plan as old_plan

        return old_plan(*args)


def analysis_over_decode(files: list[Path], reps: int) -> dict:
    """Decode only, the analysis pipeline, and the corpus worker's whole path per video (analysis, work files,
    checkpoints, the Parquet part), interleaved ``reps`` times, with the corpus run's own options."""
    from ferkit.analysis.setup import make_analyzer
    from ferkit.corpus.jobs import RunSpec
    from ferkit.corpus.worker import analyse_video, worker_models
    from ferkit.media.video import iter_every

    out = {}
    for every in (10, 100):
        spec = RunSpec(every=every)
        analyzer = make_analyzer(worker_models(spec), spec.options())
        list(analyzer.iter_source(files[0]))  # warm: detector and model sessions
        dec, ana, cor = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            jobs = corpus_jobs(files, Path(tmp), every)
            analyse_video(jobs[0])  # warm: the worker's models and analyzer
            for _ in range(reps):  # interleaved, so a change of the machine's load hits all alike
                dec.append(_best(lambda e=every: [sum(1 for _ in iter_every(f, e)) for f in files], 1))
                ana.append(_best(lambda a=analyzer: [sum(1 for _ in a.iter_source(f)) for f in files], 1))
                cor.append(_best(lambda js=jobs: [_ok(analyse_video(j)) for j in js], 1))
        row = {"decode_s": min(dec), "analyse_s": min(ana), "corpus_s": min(cor)}
        for name, times in (("", ana), ("corpus_", cor)):
            ratios = sorted(a / d for a, d in zip(times, dec, strict=True))
            row[f"{name}ratio"] = round(min(times) / min(dec), 2)
            row[f"{name}median_pair_ratio"] = round(ratios[len(ratios) // 2], 2)
        out[f"every{every}"] = row
    out["every100"]["per_sample_ms"] = per_sample_costs(files, 100)
    return out


def _ok(result) -> None:
    if not result.ok:
        raise SystemExit(f"{result.video_id}: {result.error}")


#: What the per-sample breakdown adds up (cumulative time of these functions in one profiled pass).
_COSTS = {
    "decode (iter_every: demux, decode, gray plane)": ("media/video.py", "_iter_targets", "iter_every"),
    "packet index (demux-only pass)": ("media/video.py", "packet_index", "_packet_index"),
    "RGB conversion (for the detector)": ("media/images.py", "rgb"),
    "face detection": ("faces/detectors.py", "detect"),
    "tracking (corner points, matching)": ("faces/tracking.py", "_corners"),
    "alignment": ("faces/align.py", "align_face"),
    "emotion model": ("models/ensemble.py", "predict"),
}


def per_sample_costs(files: list[Path], every: int) -> dict:
    """Milliseconds per sample of each stage of the analysis over ``files`` (one pass under cProfile)."""
    import cProfile
    import pstats

    from ferkit.analysis.setup import make_analyzer
    from ferkit.corpus.jobs import RunSpec
    from ferkit.corpus.worker import worker_models

    spec = RunSpec(every=every)
    analyzer = make_analyzer(worker_models(spec), spec.options())
    list(analyzer.iter_source(files[0]))
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    samples = sum(len({r.frame_index for r in analyzer.iter_source(f)}) for f in files)
    prof.disable()
    wall = time.perf_counter() - t
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out = {"samples": samples, "total (profiled)": round(1000 * wall / samples, 2)}
    for name, (file, *funcs) in _COSTS.items():
        cum = max(
            (v[3] for (f, _, fn), v in stats.items() if f.endswith(file) and fn in funcs),
            default=0.0,
        )
        out[name] = round(1000 * cum / samples, 2)
    return out


def segments_vs_whole(root: Path) -> dict:
    """The 60 s clip as one piece and in 0.1-minute segments, at every 10th, 25th and 100th frame: which rows differ
    (per-frame fields, smoothed probabilities and label) and how many face tracks each has."""
    import pandas as pd

    from ferkit.corpus.jobs import RunSpec
    from ferkit.corpus.run import corpus_run

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.csv").write_text("path,title\nedtalk_pose_source2.mp4,pose2\n")
        for every in (10, 25, 100):
            parts = []
            for minutes in (0, 0.1):
                run = Path(tmp) / f"e{every}_{minutes}"
                corpus_run(Path(tmp) / "m.csv", run, RunSpec(every=every, segment_minutes=minutes), root=root)
                parts.append(pd.read_parquet(run / "records" / "pose2.parquet"))
            whole, seg = parts
            sp = [c for c in whole.columns if c.startswith("sp_")]
            per_frame = ["box_x", "box_y", "box_w", "box_h", "detection_score", "emotion"]
            per_frame += [c for c in whole.columns if c.startswith("p_")]
            d_sp = (whole[sp] - seg[sp]).abs().max(axis=1)
            out[f"every{every}"] = {
                "rows": [len(whole), len(seg)],
                "per_frame_rows_differing": int((whole[per_frame] != seg[per_frame]).any(axis=1).sum()),
                "smoothed_prob_rows_differing": int((d_sp > 0).sum()),
                "smoothed_prob_max_diff": round(float(d_sp.max()), 4),
                "smoothed_label_rows_differing": int((whole["smoothed_emotion"] != seg["smoothed_emotion"]).sum()),
                "tracks": [int(whole["face_id"].nunique()), int(seg["face_id"].nunique())],
            }
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
    setup = round(sum(e.get("setup_s", 0.0) for e in done), 2)  # logged since the worker left its setup out
    return {"engine": engine, "workers": workers, "every": every, "wall_s": round(wall, 2), "videos": len(done),
            "worker_seconds": work, "worker_setup_seconds": setup,
            "peak_rss_mb_per_worker": sorted(peaks.values())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=HERE.parent.parent / "shared" / "data" / "clips")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "corpus_speed.json")
    ap.add_argument("--parts", default="decode,analysis,runs,film,segments", help="Comma-separated parts to measure.")
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
    if "segments" in parts:
        doc["segments_vs_whole"], doc["commands"]["segments_vs_whole"] = segments_vs_whole(args.root), cmd
        print(json.dumps(doc["segments_vs_whole"], indent=1))
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
