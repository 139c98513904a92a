"""Live input (issue 16 item 5): clips played at their own rate through ``ferkit analyze --live``.

    python benchmarks/live.py [--repeat 1] [--runs talking,stage,talking-aus,talking-fps10,talking-tcp]

Each run is the real command, ``python -m ferkit.cli analyze --live CLIP -o OUT.jsonl --no-plots [extra]``, in its
own process; a recording is paced by its timestamps, as a camera would deliver it. ``talking-tcp``: another process
plays the clip as a live MPEG-TS stream over TCP (:func:`ferkit.media.live.serve_as_stream`) and the command reads
``tcp://127.0.0.1:PORT``: a network stream without a duration, taken as its packets arrive. From the records: per-frame
latency (capture to the frame's last record written: the largest ``latency_ms`` of its records; median, p95, max),
frames processed and dropped (``dropped`` summed; with the whole stream played, processed + dropped = the clip's
frame count), effective frames/s (processed / wall seconds of the live run, from the command's summary line). Also
the process's CPU seconds (start-up, model loading and warm-up included) and the 1-minute load average sampled every
second during the run. Results: a table and ``benchmarks/results/live.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
RUNS = {
    "talking": (DATA / "videos" / "woman_talking.mp4", []),
    "stage": (DATA / "clips" / "stage_hamilton.mp4", []),  # a performer and a pianist, audience faces at times
    "talking-aus": (DATA / "videos" / "woman_talking.mp4", ["--aus"]),
    "talking-fps10": (DATA / "videos" / "woman_talking.mp4", ["--fps", "10"]),
    "talking-tcp": (DATA / "videos" / "woman_talking.mp4", ["tcp"]),  # served live over TCP by another process
}
SERVE = "import sys; from ferkit.media.live import serve_as_stream; print(serve_as_stream(sys.argv[1], sys.argv[2]))"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_frames(clip: Path) -> int:
    from ferkit.media.video import iter_video

    return sum(1 for _ in iter_video(clip, None))


def one_run(clip: Path, extra: list[str]) -> dict:
    """Run the command once; latency, counts and load from its records and summary."""
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            loads.append(os.getloadavg()[0])

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "live.jsonl"
        source, writer = str(clip), None
        if extra == ["tcp"]:  # an encoder process serves the clip live (MPEG-TS over TCP, its own rate; no duration)
            source, extra = f"tcp://127.0.0.1:{_free_port()}", []
            serve = [sys.executable, "-c", SERVE, str(clip), source + "?listen=1"]
            writer = subprocess.Popen(serve, stdout=subprocess.DEVNULL)  # noqa: S603 - our own function
        cmd = [sys.executable, "-m", "ferkit.cli", "analyze", "--live", source, "-o", str(out), "--no-plots", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        threading.Thread(target=sample, daemon=True).start()
        for _ in range(50):  # a served stream: until the encoder listens (refused: exit 2 before any output)
            res = subprocess.run(cmd, capture_output=True, text=True)  # noqa: S603 - our own command
            if res.returncode != 2 or writer is None:
                break
        res.check_returncode()
        if writer is not None:
            writer.wait(timeout=60)
        done.set()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        records = [json.loads(line) for line in out.read_text().splitlines()]
    latency: dict[int, float] = {}
    dropped: dict[int, int] = {}
    for r in records:
        latency[r["frame_index"]] = max(latency.get(r["frame_index"], 0.0), r["latency_ms"])
        dropped[r["frame_index"]] = r["dropped"]
    lat = np.array(list(latency.values()))
    m = re.search(r"in ([\d.]+) s \(([\d.]+) frames/s\)", res.stderr)
    seconds = float(m[1]) if m else float("nan")
    return {
        "command": " ".join(["ferkit", *cmd[3:]]).replace(str(out), "OUT.jsonl").replace(str(DATA), "../shared/data")
        + (f" (the stream: serve_as_stream('{clip.name}', '{source}?listen=1') in another process)" if writer else ""),
        "records": len(records),
        "face_records": sum(r["face_id"] is not None for r in records),
        "processed": len(latency),
        "dropped": sum(dropped.values()),
        "dropped_before_first_processed": dropped[min(dropped)] if dropped else 0,  # stale on arrival (start-up)
        "latency_ms": {
            "median": round(float(np.median(lat)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "max": round(float(lat.max()), 2),
        },
        "live_seconds": seconds,
        "effective_fps": round(len(latency) / seconds, 2) if m else None,
        "cpu_seconds_whole_process": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "load_1min": {"before": round(load_before, 2), "during_mean": round(float(np.mean(loads or [load_before])), 2),
                      "during_max": round(max(loads or [load_before]), 2)},
        "summary_line": next((line for line in res.stderr.splitlines() if line.startswith("live:")), ""),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma list of {', '.join(RUNS)}")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    out = HERE / "results" / "live.json"
    doc: dict = json.loads(out.read_text()) if out.is_file() else {"runs": {}}  # other runs' results are kept
    if "command" in doc:  # one command for every run, as the file was first written
        doc["commands"] = dict.fromkeys(doc["runs"], doc.pop("command"))
    doc.setdefault("commands", {})
    for name in args.runs.split(","):
        clip, extra = RUNS[name]
        frames = stream_frames(clip)
        runs = [one_run(clip, extra) for _ in range(args.repeat)]
        for r in runs:
            r["stream_frames"] = frames
            r["processed_plus_dropped"] = r["processed"] + r["dropped"]
        doc["runs"][name] = {"clip": clip.name, "extra": extra, "stream_frames": frames, "repeats": runs}
        doc["commands"][name] = f"python benchmarks/live.py --runs {name} --repeat {args.repeat}"
        for r in runs:
            lat = r["latency_ms"]
            print(
                f"{name:14s} {r['processed']:4d} processed {r['dropped']:4d} dropped of {frames} | latency ms median "
                f"{lat['median']} p95 {lat['p95']} max {lat['max']} | {r['effective_fps']} fps | "
                f"CPU s {r['cpu_seconds_whole_process']} | load {r['load_1min']}",
                flush=True,
            )
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
