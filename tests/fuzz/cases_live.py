"""``analyze --live SOURCE``: sources that cannot be opened or decoded (missing, folder, FIFO, text, audio-only,
absent cameras and devices, refused and unknown URLs, FFmpeg protocol names), what live output cannot do (--resume,
parquet, other inputs), the limits' domains, and a good clip (records with latency and drop counts)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .inputs import audio_only_mp4, copy_clip, copy_crop, short_clip
from .registry import FuzzCase, Outcome, expect_records, read_jsonl, register

LIVE = ["analyze", "--no-plots", "-o", "out.jsonl", "--live"]


def _live(cid: str, source: str, setup=None, extra=(), expect: str = "usage_error", check=None, **kw: object) -> None:
    register(
        FuzzCase(
            f"analyze/live-{cid}", "analyze", "live", [*LIVE, source, *extra], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=check, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


def _clip(tmp: Path) -> None:
    copy_clip(tmp / "v.mp4")


def _live_records(n: int):
    """``n`` frames' records, each with a face, ``latency_ms`` and ``dropped``, in stream order."""
    base = expect_records("out.jsonl", n=n, faces=n)

    def check(o: Outcome) -> None:
        base(o)
        recs = read_jsonl(o.tmp / "out.jsonl")
        assert all(r["latency_ms"] >= 0 and r["dropped"] >= 0 for r in recs), "live fields missing"
        idx = [r["frame_index"] for r in recs]
        assert idx == sorted(set(idx)), f"frame indices out of order: {idx}"

    return check


# --- sources that cannot be used: one line, exit 2 ----------------------------------------------------------------
_live("missing-file", "nope.mp4", error_match=r"nope\.mp4: no such file, device or stream URL")
_live("empty-string", "", error_match=r"empty string")
_live("folder", "d", lambda t: (t / "d").mkdir(), error_match=r"d: a folder")
_live("fifo", "f.mp4", lambda t: os.mkfifo(t / "f.mp4"), error_match=r"not a video file", timeout=20)
_live("zero-byte", "x.mp4", lambda t: (t / "x.mp4").write_bytes(b""))
_live("garbage", "x.mp4", lambda t: (t / "x.mp4").write_bytes(os.urandom(20000)))
_live("text", "x.avi", lambda t: (t / "x.avi").write_text("not a movie"))
_live("audio-only", "a.mp4", lambda t: shutil.copyfile(audio_only_mp4(), t / "a.mp4"), error_match=r"no video stream")
_live("index-last-cut", "cut.mp4", lambda t: (t / "cut.mp4").write_bytes(short_clip(False).read_bytes()[:20000]))
_live("camera-absent", "63", error_match=r"63 \(/dev/video63\): cannot open live source")
_live("device-absent", "/dev/video62", error_match=r"/dev/video62: cannot open live source")
_live("not-a-camera-device", "/dev/null", timeout=30, subprocess=True)
_live("url-refused", "http://127.0.0.1:9/x.mp4", error_match=r"cannot open live source", timeout=30)
_live("rtsp-refused", "rtsp://127.0.0.1:9/stream", error_match=r"cannot open live source", timeout=30)
_live("unknown-protocol", "nosuch://x/y", error_match=r"cannot open live source")
_live("concat-protocol-name", "concat:v.mp4|v.mp4", _clip, error_match=r"no such file",
      note="FFmpeg would read the name as its concat protocol; a live path is opened as file: only")  # fmt: skip
_live("newline-in-name", "a\nb.mp4", lambda t: (t / "a\nb.mp4").write_bytes(b""))

# --- what live output cannot do, and the limits' domains ----------------------------------------------------------
_live("resume", "v.mp4", _clip, ["--resume"], error_match=r"--resume does not apply to --live")
_live("parquet", "v.mp4", _clip, ["--format", "parquet"], error_match=r"jsonl or csv")
_live("with-paths", "v.mp4", lambda t: (_clip(t), copy_crop(t / "x.jpg")), ["x.jpg"], error_match=r"no other inputs")
_live("output-is-source", "v.mp4", _clip, ["-o", "v.mp4"], error_match=r"input")
for value in ("0", "-3", "1.5", "many", "1e30"):
    _live(f"max-frames-{value}", "v.mp4", _clip, ["--max-frames", value])
for value in ("0", "-1", "nan", "inf", "1e300", "soon"):
    _live(f"duration-{value}", "v.mp4", _clip, ["--duration", value])
_live("fps-zero", "v.mp4", _clip, ["--fps", "0"])
_live("fps-nan", "v.mp4", _clip, ["--fps", "nan"])
for option, value in (("--max-frames", "3"), ("--duration", "1")):
    register(
        FuzzCase(
            f"analyze/{option.lstrip('-')}-without-live", "analyze", "live",
            ["analyze", "v.mp4", "--no-plots", "-o", "out.jsonl", option, value], setup=_clip,
            error_match=r"apply to --live only",
        )
    )  # fmt: skip


def _csv_has_live_columns(o: Outcome, n: int) -> None:
    lines = (o.tmp / "out.csv").read_text().splitlines()
    assert lines[0].endswith(",latency_ms,dropped") and len(lines) == n + 1, lines[:2]


# --- good sources: exit 0 with live records ----------------------------------------------------------------------
_live("good-clip-max-frames", "v.mp4", _clip, ["--max-frames", "6"], expect="ok", check=_live_records(6))
_live("good-clip-csv", "v.mp4", _clip, ["--max-frames", "4", "--format", "csv", "-o", "out.csv"], expect="ok",
      check=lambda o: _csv_has_live_columns(o, 4))  # fmt: skip
_live("file-url", "file:v.mp4", _clip, ["--max-frames", "3"], expect="either", check=_live_records(3),
      note="no '://': a file named 'file:v.mp4' is looked for, and is missing")  # fmt: skip
