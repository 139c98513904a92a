"""``ferkit analyze --live``: a real clip played at its own rate through the newest-frame source; drops under a slow
consumer, record fields, stopping (end of stream, limits, Ctrl-C) and bad sources. Counts and structure only: no
assertion on how long anything took."""

from __future__ import annotations

import functools
import http.server
import itertools
import json
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import DATA, VIDEO
from jsonschema import Draft202012Validator

from ferkit.analysis.live import run_live
from ferkit.analysis.records import LIVE_FIELDS, load_jsonl, read_records, record_schema
from ferkit.analysis.setup import make_analyzer
from ferkit.errors import InputError
from ferkit.media.live import LiveSource, serve_as_stream
from ferkit.media.video import iter_video

CLIP = DATA / "clips" / "pyfeat_single_face.mp4"  # 640×360, 72 frames at 30 fps (2.4 s), one face


@pytest.fixture(scope="module")
def analyzer():
    return make_analyzer("ferkit")


@functools.cache
def clip_frames() -> int:
    return sum(1 for _ in iter_video(CLIP, None))


def _frames(records: list[dict]) -> list[dict]:
    """The first record of each processed frame (all records of a frame share its index, time and drop count)."""
    seen: dict[int, dict] = {}
    for r in records:
        seen.setdefault(r["frame_index"], r)
    return list(seen.values())


def test_clip_at_real_time_rate_gives_timed_records_and_consistent_counts(analyzer, tmp_path: Path) -> None:
    out = tmp_path / "live.jsonl"
    summary = run_live(str(CLIP), analyzer, out)
    records = load_jsonl(out)
    assert summary.stopped_by == "end of stream" and summary.records == len(records) > 0
    validator = Draft202012Validator(record_schema())
    for r in records:
        validator.validate(r)
        assert r["latency_ms"] >= 0 and r["dropped"] >= 0 and r["source"] == str(CLIP)
    frames = _frames(records)
    assert len(frames) == summary.processed
    assert sum(r["face_id"] is not None for r in frames) >= 0.9 * len(frames)  # one face, found on (nearly) every frame
    times, indices = [r["timestamp"] for r in frames], [r["frame_index"] for r in frames]
    assert all(b > a for a, b in itertools.pairwise(times)) and all(b > a for a, b in itertools.pairwise(indices))
    # every frame of the stream was either processed or dropped, and the records say which
    assert summary.arrived == clip_frames() == summary.processed + summary.dropped
    assert sum(r["dropped"] for r in frames) == summary.dropped
    assert [b - a - 1 for a, b in itertools.pairwise(indices)] == [r["dropped"] for r in frames[1:]]
    assert indices[-1] == clip_frames() - 1 and len(summary.latency_ms) == summary.processed


def test_slow_consumer_drops_stale_frames_and_tracks_over_uneven_gaps(analyzer, tmp_path: Path) -> None:
    """A consumer that sometimes stalls for several frame intervals: frames are dropped instead of queued (it ends
    with the stream's last frame, having processed far fewer than arrived), and gaps of 1 to ~7 frames between
    processed frames keep the face and its id (optical flow across short gaps, detection across long ones)."""
    pauses = iter([0.0, 0.06, 0.0, 0.2] * 100)
    out = tmp_path / "slow.jsonl"
    summary = run_live(str(CLIP), analyzer, out, after_frame=lambda f: time.sleep(next(pauses)))
    frames = _frames(load_jsonl(out))
    assert summary.dropped > 0 and summary.processed < 0.8 * summary.arrived
    assert summary.arrived == clip_frames() == summary.processed + summary.dropped
    assert frames[-1]["frame_index"] == clip_frames() - 1  # no backlog: the last frame processed is the stream's last
    gaps = {b["frame_index"] - a["frame_index"] for a, b in itertools.pairwise(frames)}
    assert len(gaps) > 1  # uneven gaps
    with_face = [r for r in frames if r["face_id"] is not None]
    assert len(with_face) >= 0.9 * len(frames) and {r["face_id"] for r in with_face} == {0}


def test_source_keeps_only_the_newest_frame() -> None:
    """Nothing queues: a consumer that waits gets the newest frame, and every frame before it counts as dropped."""
    with LiveSource(str(CLIP)) as live:
        while live.arrived < 10:  # frames arrive at the clip's rate; none is taken meanwhile
            time.sleep(0.01)
        arrived = live.arrived
        frame = live.take()
        assert frame is not None and frame.index >= arrived - 1 and frame.dropped == frame.index
        assert frame.captured > 0 and frame.gray.shape == (360, 640)
        nxt = live.take()
        assert nxt is not None and nxt.index == frame.index + 1 + nxt.dropped and nxt.timestamp > frame.timestamp


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _faststart_copy(dst: Path) -> Path:
    """The clip remuxed with its index first: a plain HTTP server (no range requests) can then stream it."""
    import av

    with av.open(str(CLIP)) as src, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def test_limits_and_a_stream_url(analyzer, tmp_path: Path) -> None:
    """--max-frames stops after that many frames; an http:// URL of a recording is opened by PyAV and paced too."""
    (tmp_path / "served").mkdir()
    served = _faststart_copy(tmp_path / "served" / "clip.mp4")
    handler = functools.partial(_QuietHandler, directory=str(served.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{served.name}"
        summary = run_live(url, analyzer, tmp_path / "url.csv", "csv", max_frames=12)
    finally:
        server.shutdown()
    frame = read_records(tmp_path / "url.csv")
    assert summary.stopped_by == "--max-frames" and summary.processed == 12 == frame["frame_index"].nunique()
    assert list(frame.columns[-2:]) == list(LIVE_FIELDS) and frame["face_id"].notna().sum() >= 10
    assert summary.arrived >= summary.processed + summary.dropped  # frames that came after the last one taken
    short = run_live(str(CLIP), analyzer, tmp_path / "d.jsonl", duration=0.5)
    assert short.stopped_by == "--duration" and 0 < short.processed < clip_frames()
    capped = run_live(str(CLIP), analyzer, tmp_path / "f.jsonl", fps=10)
    assert capped.processed + capped.dropped == capped.arrived == clip_frames() and capped.dropped > capped.processed
    times = [r["timestamp"] for r in _frames(load_jsonl(tmp_path / "f.jsonl"))][:-1]  # the last: the stream's last
    slots = [math.floor(t * 10 + 1e-6) for t in times]  # sampled as --fps 10 samples a file: one per 0.1 s at most
    assert slots == sorted(set(slots)) and slots[0] == 0


def test_a_live_network_stream_from_another_process(analyzer, tmp_path: Path) -> None:
    """An encoder process serves the clip as a live MPEG-TS stream over TCP at its own rate (no duration: frames are
    taken as they arrive); the run ends with the stream, and every frame sent was processed or dropped."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = "import sys; from ferkit.media.live import serve_as_stream; print(serve_as_stream(sys.argv[1], sys.argv[2]))"
    url = f"tcp://127.0.0.1:{port}"
    cmd = [sys.executable, "-c", code, str(CLIP), url + "?listen=1"]
    writer = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(150):  # until the encoder listens: a refused connection is an InputError before any output
            try:
                summary = run_live(url, analyzer, tmp_path / "tcp.jsonl", "jsonl")
                break
            except InputError:
                time.sleep(0.2)
        else:
            pytest.fail("the encoder process never listened")
        sent = int(writer.communicate(timeout=60)[0])
    finally:
        writer.kill()
    assert summary.stopped_by == "end of stream" and sent == clip_frames()
    assert summary.processed + summary.dropped == summary.arrived == sent and summary.processed > 0
    records = load_jsonl(tmp_path / "tcp.jsonl")
    assert all(r["latency_ms"] >= 0 for r in records) and sum(r["face_id"] is not None for r in records) > 0
    times = [r["timestamp"] for r in _frames(records)]
    assert times == sorted(times) and len(times) == summary.processed


def test_serving_a_bad_file_is_one_input_error(tmp_path: Path) -> None:
    """serve_as_stream refuses what it cannot play before it listens for a client."""
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    for name, needle in (("missing.mp4", "cannot open"), ("junk.mp4", "cannot open")):
        with pytest.raises(InputError, match=needle):
            serve_as_stream(tmp_path / name, "tcp://127.0.0.1:9?listen=1")


def ferkit(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ferkit.cli", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--live", "missing.mp4"], "missing.mp4: no such file, device or stream URL"),
        (["--live", "/dev/video97"], "/dev/video97: cannot open live source"),
    ],
)  # more bad sources and options, in-process: tests/fuzz/cases_live.py
def test_bad_live_source_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    res = ferkit("analyze", *args, "--no-plots", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr
    assert not (tmp_path / "ferkit-results").exists()


def test_ctrl_c_keeps_the_records_prints_the_summary_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "live.jsonl"
    args = [sys.executable, "-m", "ferkit.cli", "analyze", "--live", str(VIDEO), "-o", str(out), "--no-plots"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and (not out.exists() or len(out.read_bytes()) < 5000):
        time.sleep(0.05)  # a reader tails the file while it grows
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == str(out) and "stopped by interrupted" in stderr
    lines = out.read_text().splitlines()
    assert all(json.loads(line)["latency_ms"] >= 0 for line in lines)  # every line complete
    assert f"{len(lines)} records" in stderr and len(lines) < 464  # stopped before the clip's end
