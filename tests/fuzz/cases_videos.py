"""Hostile videos: truncated MP4s (index first, so the cut part is silently missing; index last, so nothing opens),
zero-byte, audio-only, garbage or an image behind a video suffix, damaged data, and names FFmpeg reads as URLs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from .inputs import (
    audio_only_mp4,
    copy_blank,
    copy_clip,
    copy_crop,
    short_clip,
    write_video,
)
from .registry import FuzzCase, Outcome, all_checks, expect_records, read_jsonl, register, stderr_has

ANALYZE = ["analyze", "--no-plots", "-o", "out.jsonl", "--fps", "5"]
#: The short clip: 30 frames at 15 fps (2 s); sampled at 5 fps it gives 10 samples (t = 0, 0.2, … 1.8).


def _cut(fraction: float, faststart: bool = True, name: str = "cut.mp4"):
    def setup(tmp: Path) -> None:
        data = short_clip(faststart).read_bytes()
        (tmp / name).write_bytes(data[: int(len(data) * fraction)])

    return setup


def _video(cid: str, name: str, setup, expect: str = "usage_error", check=None, extra=(), **kw: object) -> None:
    register(
        FuzzCase(
            f"analyze/video-{cid}", "analyze", "videos", [*ANALYZE, *extra, name], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=check, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


def _truncation_reported(o: Outcome) -> None:
    """A cut video may be analysed up to the cut only if the run says so (a warning naming the file)."""
    recs = read_jsonl(o.tmp / "out.jsonl")
    assert recs, "no records"
    stderr_has(r"warning.*(cut|truncat|incomplete|stopped|ends early|missing)")(o)


for frac in (0.3, 0.6, 0.9):
    _video(f"truncated-faststart-{int(frac * 100)}pct", "cut.mp4", _cut(frac), expect="either",
           check=_truncation_reported,
           note="index at the front: decoding ends at the cut without an error")  # fmt: skip
_video("truncated-faststart-fps-all", "cut.mp4", _cut(0.5), expect="either", check=_truncation_reported,
       extra=["--fps", "all"])  # fmt: skip
_video("truncated-index-last-50pct", "cut.mp4", _cut(0.5, faststart=False), note="no moov atom: unreadable")
_video("truncated-index-last-tail", "cut.mp4", _cut(0.995, faststart=False), expect="either",
       check=_truncation_reported, note="the index itself is cut")  # fmt: skip
_video("truncated-to-header", "cut.mp4", _cut(0.02), expect="either", check=_truncation_reported)
_video("zero-byte", "x.mp4", lambda t: (t / "x.mp4").write_bytes(b""))
_video("garbage", "x.mp4", lambda t: (t / "x.mp4").write_bytes(os.urandom(20000)))
_video("text-as-avi", "x.avi", lambda t: (t / "x.avi").write_text("not a movie"))
_video("text-as-ts", "x.ts", lambda t: (t / "x.ts").write_text("G" * 188 * 4), note="a run of MPEG-TS sync bytes")
_video("ftyp-only", "x.mp4", lambda t: (t / "x.mp4").write_bytes(short_clip().read_bytes()[:32]))
_video("audio-only", "a.mp4", lambda t: shutil.copyfile(audio_only_mp4(), t / "a.mp4"))
_video("directory-named-mp4", "x.mp4", lambda t: (t / "x.mp4").mkdir())
_video("fifo-named-mp4", "x.mp4", lambda t: os.mkfifo(t / "x.mp4"), timeout=20)
_video("symlink-loop", "x.mp4", lambda t: ((t / "x.mp4").symlink_to("y.mp4"), (t / "y.mp4").symlink_to("x.mp4")))
_video("dangling-symlink", "x.mp4", lambda t: (t / "x.mp4").symlink_to("gone.mp4"))
_video("newline-in-name", "a\nb.mp4", lambda t: (t / "a\nb.mp4").write_bytes(b""))
_video("jpeg-as-mp4", "x.mp4", lambda t: copy_crop(t / "x.mp4"), expect="either",
       check=expect_records("out.jsonl", n=1), note="FFmpeg decodes a JPEG as a one-frame video")  # fmt: skip
_video("good-clip", "v.mp4", lambda t: copy_clip(t / "v.mp4"), expect="ok",
       check=expect_records("out.jsonl", n=10, faces=10))  # fmt: skip
_video("good-clip-index-last", "v.mp4", lambda t: copy_clip(t / "v.mp4", faststart=False), expect="ok",
       check=expect_records("out.jsonl", n=10, faces=10))  # fmt: skip


def _damaged_middle(tmp: Path) -> None:
    data = bytearray(short_clip().read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = os.urandom(4000)
    (tmp / "d.mp4").write_bytes(bytes(data))


_video("damaged-middle", "d.mp4", _damaged_middle, expect="either", check=expect_records("out.jsonl", min_n=5))


def _one_frame(tmp: Path) -> None:
    write_video([np.full((48, 64, 3), 90, np.uint8)], tmp / "one.mp4", fps=10)


_video("single-frame", "one.mp4", _one_frame, expect="ok", check=expect_records("out.jsonl", n=1))


def _tiny_frames(tmp: Path) -> None:
    write_video([np.full((16, 16, 3), 90, np.uint8)] * 5, tmp / "tiny.mp4", fps=5)


_video("16px-frames", "tiny.mp4", _tiny_frames, expect="ok", check=expect_records("out.jsonl", n=5))


def _url_name(tmp: Path) -> None:
    copy_clip(tmp / "v.mp4")
    (tmp / "concat:v.mp4").write_bytes(os.urandom(5000))


_video("ffmpeg-protocol-name", "concat:v.mp4", _url_name,
       note="FFmpeg takes the name as a URL: the concat protocol opens v.mp4 instead of the garbage file")  # fmt: skip


def _subfile_name(tmp: Path) -> None:
    copy_clip(tmp / "v.mp4")
    (tmp / "file:v.mp4").write_text("not a video")


_video("file-protocol-name", "file:v.mp4", _subfile_name, note="'file:v.mp4' names a text file, FFmpeg opens v.mp4")


def _folder_with_cut(tmp: Path) -> None:
    copy_clip(tmp / "in" / "a_good.mp4")
    data = short_clip().read_bytes()
    (tmp / "in" / "b_cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp / "in" / "c_zero.mp4").write_bytes(b"")


register(
    FuzzCase(
        "analyze/video-folder-with-cut-and-empty", "analyze", "videos", [*ANALYZE, "in"], setup=_folder_with_cut,
        expect="ok",
        check=all_checks(
            expect_records("out.jsonl", min_n=12),
            stderr_has(r"c_zero\.mp4"),
            stderr_has(r"b_cut\.mp4"),
        ),
        note="the empty clip is listed as skipped; the cut one is analysed without a word",
    )
)  # fmt: skip

# calibrate --unlabelled never prints the analyser's warnings
register(
    FuzzCase(
        "calibrate/unlabelled-truncated-video", "calibrate", "videos",
        ["calibrate", "cut.mp4", "--unlabelled", "--objective", "distribution", "--target", "happy=1,neutral=1",
         "--method", "grid", "--trials", "5", "--fps", "5", "-o", "cal.json"],
        setup=_cut(0.5), expect="either", check=stderr_has(r"warning.*cut\.mp4"),
    )
)  # fmt: skip
register(
    FuzzCase(
        "calibrate/unlabelled-audio-only", "calibrate", "videos",
        ["calibrate", "a.mp4", "--unlabelled", "--objective", "distribution", "--target", "happy=1",
         "--method", "grid", "--trials", "5", "-o", "cal.json"],
        setup=lambda t: shutil.copyfile(audio_only_mp4(), t / "a.mp4"),
    )
)  # fmt: skip
register(
    FuzzCase(
        "calibrate/unlabelled-no-face-video", "calibrate", "videos",
        ["calibrate", "v.mp4", "--unlabelled", "--objective", "distribution", "--target", "happy=1",
         "--method", "grid", "--trials", "5", "-o", "cal.json"],
        setup=lambda t: copy_blank(t / "v.mp4"),
    )
)  # fmt: skip

# --- evaluate on a <class>/<clip> folder with nothing to score: one line naming the dataset or the clip -----------


def _clip_dataset(fill):
    def setup(tmp: Path) -> None:
        (tmp / "ds" / "happy").mkdir(parents=True)
        fill(tmp / "ds" / "happy")

    return setup


def _header_only(folder: Path) -> None:
    data = short_clip().read_bytes()
    (folder / "c.mp4").write_bytes(data[: int(len(data) * 0.02)])


for cid, fill, match in [
    ("no-face", lambda d: copy_blank(d / "v.mp4"), r"ds: no face found in any of its 1 clip.*5 frame"),
    ("truncated-to-header", _header_only, r"ds: no face found .*c\.mp4: video ends early"),
    ("only-zero-byte-clip", lambda d: (d / "x.mp4").write_bytes(b""), r"x\.mp4: not a readable video"),
    ("only-audio-clip", lambda d: shutil.copyfile(audio_only_mp4(), d / "a.mp4"), r"a\.mp4: no video stream"),
]:
    register(
        FuzzCase(
            f"evaluate/video-dataset-{cid}", "evaluate", "videos", ["evaluate", "ds", "--report", "r.json"],
            setup=_clip_dataset(fill), error_match=match, note="nothing to score: metrics would fail on no samples",
        )
    )  # fmt: skip
