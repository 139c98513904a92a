"""Every-frame video analysis speed and peak memory, with the stages broken down.

    python benchmarks/video_speed.py [--video ../shared/data/videos/woman_talking.mp4] [--long 4]
    python benchmarks/video_speed.py --long 0 --modes ferkit,ferkit-aus,ferkit-aus-every-frame \
        --out video_speed_aus.json  # --aus cost (as shipped: --au-fps 15; and every frame fitted)
    python benchmarks/video_speed.py --long 0 --modes ferkit,ferkit@blazeface --out video_speed_detectors.json

A mode may end in ``@DETECTOR`` to run with that detector instead of the default (YuNet), and then in ``%MODEL`` to
run that model instead of the default one (``ferkit%ferkit-wild2``; ``ferkit.models.loading.DEFAULT_MODEL``):

    python benchmarks/video_speed.py --long 0 --repeat 5 --modes ferkit%ferkit,ferkit%ferkit-wild2 \
        --out video_speed_models.json

Each configuration runs in its own subprocess (so peak RSS is its own) and is timed end to end after the model and
detector are loaded (load time is reported separately). ``--long N`` also analyses an N× longer re-encoded copy
to show that memory stays flat in video length. Results: printed table + benchmarks/results/video_speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VIDEO = HERE.parent.parent / "shared" / "data" / "videos" / "woman_talking.mp4"


def run_config(video: str, mode: str) -> dict:
    """Run one configuration in this process; returns frames, seconds, peak RSS."""
    import numpy as np

    from ferkit.analysis.pipeline import AnalyzeOptions, Analyzer
    from ferkit.api import ANALYSIS_THREADS
    from ferkit.faces.detectors import create_detector
    from ferkit.media.video import iter_video
    from ferkit.models.loading import DEFAULT_MODEL, load_model

    label = mode
    mode, _, model_name = mode.partition("%")
    mode, _, detector = mode.partition("@")
    t_load = time.perf_counter()
    model = load_model(model_name or DEFAULT_MODEL, ANALYSIS_THREADS)
    det = create_detector(detector or "yunet")
    model.predict_proba(np.zeros((1, model.input_size, model.input_size), np.uint8))
    load_s = time.perf_counter() - t_load
    aus = mode.startswith("ferkit-aus")
    # warm-up pass (with --aus it also starts the landmarker worker processes, shared by every later analyzer)
    list(Analyzer(model, AnalyzeOptions(fps=None, aus=aus), _detector=det).iter_source(Path(video)))
    t0 = time.perf_counter()
    if mode == "decode":
        n = sum(1 for _ in iter_video(Path(video), None))
    elif mode == "decode+detect":
        n = sum(len(det.detect(f.rgb())) >= 0 for f in iter_video(Path(video), None))
    else:
        interval = 0.0 if mode == "ferkit-detect-every-frame" else 0.3
        model.tta = "flip" if mode == "ferkit-tta-flip" else "none"
        opts = AnalyzeOptions(fps=None, detect_interval=interval, aus=aus, au_fps=None if "every" in mode else 15.0)
        analyzer = Analyzer(model, opts, _detector=det)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as out:
            n = 0
            last = -1
            for rec in analyzer.iter_source(Path(video)):
                out.write(json.dumps(rec.to_dict()) + "\n")
                n += rec.frame_index != last
                last = rec.frame_index
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": label,
        "model": model.name,
        "frames": n,
        "seconds": round(dt, 3),
        "fps": round(n / dt, 1),
        "load_s": round(load_s, 2),
        "peak_rss_mb": round(rss, 1),
    }


def longer_copy(video: Path, times: int, out: Path) -> Path:
    """Re-encode ``video`` ``times`` times in a row (MPEG-4) to get a longer clip of the same content."""
    import av

    from ferkit.media.samples import write_video

    frames = []
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    rate = 30
    return write_video(frames * times, out, fps=rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--long", type=int, default=4, help="also run an N× longer copy (0: skip)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration (the median is reported)")
    ap.add_argument("--modes", default="decode,decode+detect,ferkit-detect-every-frame,ferkit,ferkit-tta-flip")
    ap.add_argument("--out", default="video_speed.json", help="file name under benchmarks/results/")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_config(*args.child)))
        return
    runs = []
    modes = args.modes.split(",")
    videos = [args.video]
    if args.long:
        tmp = Path(tempfile.mkdtemp()) / f"long_x{args.long}.mp4"
        videos.append(str(longer_copy(Path(args.video), args.long, tmp)))
    for video in videos:
        video_modes = modes if video == args.video else ["ferkit"]
        reps: dict[str, list[dict]] = {m: [] for m in video_modes}
        for _ in range(args.repeat):  # interleaved, so a busy spell on the machine hits every mode alike
            for mode in video_modes:
                cmd = [sys.executable, __file__, "--child", video, mode]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)  # noqa: S603 - this script
                reps[mode].append(json.loads(res.stdout.strip().splitlines()[-1]))
        for mode in video_modes:
            r = sorted(reps[mode], key=lambda x: x["fps"])[len(reps[mode]) // 2]  # the median run
            r.update(video=Path(video).name, fps_all_runs=[x["fps"] for x in reps[mode]])
            runs.append(r)
            print(
                f"{r['video']:18s} {mode:26s} {r['frames']:5d} frames  median {r['fps']:7.1f} frames/s "
                f"(runs {r['fps_all_runs']})  peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    import platform

    doc = {
        "command": f"python benchmarks/video_speed.py --long {args.long} --repeat {args.repeat} --modes {args.modes}",
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "runs": runs,
    }
    out = HERE / "results" / args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(out)


if __name__ == "__main__":
    main()
