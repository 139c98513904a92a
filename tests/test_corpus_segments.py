"""``ferkit corpus run`` on long videos: segments (frame windows of the sparse decoder, planning, merging), the same
parts on a local pool and a local Ray with two workers, what differs from a whole-video run, and kill -9 + resume of a
segmented run, on the 60 s clip of ../shared/data/clips cut into 0.1-minute segments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATA

from ferkit.corpus.jobs import RunSpec
from ferkit.corpus.run import corpus_run
from ferkit.errors import InputError
from ferkit.media.video import FrameWindow, VideoInfo, frame_window, iter_every, packet_index

CLIPS = DATA / "clips"
LONG = CLIPS / "edtalk_pose_source2.mp4"  # 60 s, 1499 frames at 25 fps, one face
ROWS = {"pose2": ("edtalk_pose_source2.mp4", "a"), "single": ("pyfeat_single_face.mp4", "b")}  # 60 s and 2.4 s
#: per-frame columns: what one sampled frame's faces are (tracks and smoothing are not in them)
PER_FRAME = ["frame_index", "timestamp", "time_pct", "box_x", "box_y", "box_w", "box_h", "detection_score",
             "alignment", "emotion", "confidence", "sentiment"]  # fmt: skip


def manifest(tmp: Path, rows: dict[str, tuple[str, str]] = ROWS) -> Path:
    (tmp / "m.csv").write_text("path,title,speaker\n" + "".join(f"{f},{t},{g}\n" for t, (f, g) in rows.items()))
    return tmp / "m.csv"


def log_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "run_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("every", [7, 100])
def test_a_window_yields_exactly_the_samples_of_a_whole_pass_there(every: int) -> None:
    whole = [(f.index, f.timestamp, f.gray.tobytes()) for f in iter_every(LONG, every)]
    index = packet_index(LONG)
    for start, stop in ((0, 300), (300, 701), (701, None), (1499, None), (10_000, None)):
        window = FrameWindow(start, stop, index)
        got = [(f.index, f.timestamp, f.gray.tobytes()) for f in iter_every(LONG, every, window=window)]
        assert got == [s for s in whole if s[0] >= start and (stop is None or s[0] < stop)], (start, stop)
    with frame_window(FrameWindow(300, 701)):  # how the pipeline's own call gets a segment's window
        assert [f.index for f in iter_every(LONG, every)] == [s[0] for s in whole if 300 <= s[0] < 701]
    assert [f.index for f in iter_every(LONG, every)] == [s[0] for s in whole]  # outside the block: the whole video


def test_segments_are_multiples_of_every_and_the_last_runs_to_the_end(tmp_path: Path) -> None:
    from ferkit.corpus.planning import segment_length, segments_of

    info = VideoInfo(256, 256, 25.0, 1499, 59.96)
    assert segment_length(info, 25, 0.1) == 150 and segment_length(info, 100, 0.1) == 200  # 6 s, rounded up to N
    assert segment_length(info, 100, 0) is None and segment_length(info, None, 0.1) is None  # off; --fps runs
    assert segment_length(info, 100, 1.0) is None  # not longer than one segment
    segs = segments_of(info, 150, tmp_path / "i.npz")
    assert [(s.start, s.stop) for s in segs] == [(i * 150, (i + 1) * 150) for i in range(9)] + [(1350, None)]
    assert segs[-1].label == "10/10" and segs[-1].end_s == pytest.approx(59.96) and segs[1].start_s == 6.0
    no_count = VideoInfo(256, 256, 25.0, 0, 59.96)  # a container without a frame count: from the duration
    assert len(segments_of(no_count, segment_length(no_count, 25, 0.1), tmp_path / "i.npz")) == 10  # type: ignore[arg-type]
    for bad in (-1, float("nan"), float("inf"), True):
        with pytest.raises(InputError, match="--segment-minutes"):
            RunSpec(segment_minutes=bad).segmenting()  # type: ignore[arg-type]
    assert RunSpec(every=None, fps=2.0, segment_minutes=5).segmenting() == 0.0  # --fps: whole videos


def test_segments_on_ray_and_on_the_local_pool_give_the_same_part_and_differ_from_a_whole_run_in_tracks_only(
    tmp_path: Path,
) -> None:
    """0.1-minute segments of the 60 s clip (10 tasks) every 25th frame (1 s apart): byte-identical parts from a
    local Ray with two workers and the local pool. Against a whole-video run of the same clip, measured here: the
    same samples with the same faces (boxes, scores, per-frame emotions); face ids restart at every segment (shifted
    to stay unique) and map one-to-one onto the whole run's within a segment; smoothing restarts with them."""
    pytest.importorskip("ray")
    m = manifest(tmp_path)
    spec = RunSpec(every=25, segment_minutes=0.1)
    for engine in ("local", "ray"):
        s = corpus_run(m, tmp_path / engine, spec, engine=engine, workers=2, root=CLIPS)
        assert sorted(s.done) == ["pose2", "single"] and not s.failed
        assert [p.name for p in (tmp_path / engine / ".work").iterdir()] == ["hashes.json"]  # segments merged
    for part in ("pose2.parquet", "single.parquet"):
        assert (tmp_path / "local/records" / part).read_bytes() == (tmp_path / "ray/records" / part).read_bytes()
    log = log_of(tmp_path / "ray")
    assert sorted(e["segment"] for e in log if e["event"] == "done" and e["video_id"] == "pose2") == sorted(
        f"{i}/10" for i in range(1, 11)
    )
    assert [e["segments"] for e in log if e["event"] == "merged"] == [10]
    seg = pd.read_parquet(tmp_path / "local/records/pose2.parquet")
    again = corpus_run(m, tmp_path / "local", RunSpec(every=25, segment_minutes=0), workers=1, root=CLIPS)
    assert again.done == ["pose2"] and again.skipped == ["single"]  # another split is another key; single: one piece
    whole = pd.read_parquet(tmp_path / "local/records/pose2.parquet")
    assert len(seg) == len(whole) == 60
    pd.testing.assert_frame_equal(seg[PER_FRAME], whole[PER_FRAME])
    probs = [c for c in whole.columns if c.startswith("p_")]
    pd.testing.assert_frame_equal(seg[probs], whole[probs])
    seg["segment"] = seg["frame_index"] // 150
    pairs = pd.DataFrame({"segment": seg["segment"], "seg": seg["face_id"], "whole": whole["face_id"]}).dropna()
    assert pairs.groupby("seg")["segment"].nunique().max() == 1  # no face id spans two segments
    per_segment = pairs.drop_duplicates()
    assert not per_segment.duplicated(["segment", "seg"]).any()  # within a segment: one-to-one
    assert not per_segment.duplicated(["segment", "whole"]).any()
    assert whole["face_id"].nunique() < seg["face_id"].nunique() == 10  # one track in the whole run, one per segment


def _ferkit(*args: object, cwd: Path, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "ferkit.cli", *map(str, args)]
    if wait:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    return subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True, stderr=subprocess.DEVNULL)


def test_kill_9_of_a_segmented_run_skips_finished_segments_and_resumes_the_cut_one(tmp_path: Path) -> None:
    """SIGKILL the run once two segments are finished and another has written records; the rerun analyses only the
    unfinished segments, continues the cut one from its checkpoint and gives the part of an uninterrupted run."""
    m = manifest(tmp_path, {"pose2": ROWS["pose2"]})
    args = ["corpus", "run", m, "--every", "5", "--segment-minutes", "0.1", "--root", CLIPS, "--workers", "1"]
    args += ["--checkpoint-every", "0"]
    assert _ferkit(*args, "--out", "full", cwd=tmp_path).returncode == 0
    proc = _ferkit(*args, "--out", "cut", cwd=tmp_path, wait=False)
    work, deadline = tmp_path / "cut" / ".work", time.time() + 300

    def progress() -> tuple[int, int]:
        parts = len(list(work.glob("*.s*.parquet"))) if work.is_dir() else 0
        lines = max((len(f.read_bytes().splitlines()) for f in work.glob("*.s*.jsonl")), default=0) if parts else 0
        return parts, lines

    while time.time() < deadline and proc.poll() is None and not (progress()[0] >= 2 and progress()[1] >= 5):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    finished = progress()[0]
    assert not (tmp_path / "cut" / "records" / "pose2.parquet").exists()
    res = _ferkit(*args, "--out", "cut", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    log = log_of(tmp_path / "cut")
    rerun = log[max(i for i, e in enumerate(log) if e["event"] == "start") :]
    done = [e for e in rerun if e["event"] == "done"]
    assert len(done) == 10 - finished and any(e["resumed"] for e in done)
    cut, full = (tmp_path / run / "records" / "pose2.parquet" for run in ("cut", "full"))
    assert cut.read_bytes() == full.read_bytes()
    assert not list(work.glob("pose2-*"))  # segment parts, work files and the packet index: removed after the merge


def test_segment_minutes_with_fps_is_one_line(tmp_path: Path) -> None:
    res = _ferkit("corpus", "run", manifest(tmp_path), "--out", "run", "--fps", "2", "--segment-minutes", "5",
                  "--root", CLIPS, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--segment-minutes applies to --every" in res.stderr
