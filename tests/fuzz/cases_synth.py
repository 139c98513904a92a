"""``synth speech-action``: missing or wrong inputs (no upper-face dataset, a dataset without the asked classes, a
--speech that is not a video or has no face, an output that is a file, an earlier run with other settings), each one
line and nothing written; a talking clip too short to speak in gives a clear refusal, not an empty folder."""

from __future__ import annotations

from pathlib import Path

from .inputs import copy_blank, copy_clip, labelled_folder
from .registry import FuzzCase, register

BASE = ["synth", "speech-action", "--out", "out", "--n", "2"]


def _upper_and(video: str | None):
    def setup(tmp: Path) -> None:
        labelled_folder(tmp / "faces", per_class=1, classes=["angry", "happy"])
        if video == "clip":
            copy_clip(tmp / "talk.mp4")
        elif video == "blank":
            copy_blank(tmp / "talk.mp4")
        elif video == "text":
            (tmp / "talk.mp4").write_text("not a video")

    return setup


def _out_file(tmp: Path) -> None:
    _upper_and("clip")(tmp)
    (tmp / "out").write_text("a file")


def _other_settings(tmp: Path) -> None:
    _upper_and("clip")(tmp)
    (tmp / "out").mkdir()
    (tmp / "out" / "synth.json").write_text('{"seed": 99}')


for cid, setup, extra, match in [
    ("upper-missing", _upper_and("clip"), ["--upper", "none", "--speech", "talk.mp4"], r"dataset folder not found"),
    ("upper-no-class", _upper_and("clip"), ["--upper", "faces", "--speech", "talk.mp4", "--classes", "sad"],
     r"no upper-face images of the classes sad"),
    ("speech-missing", _upper_and(None), ["--upper", "faces", "--speech", "talk.mp4"], r"not a video file"),
    ("speech-not-video", _upper_and("text"), ["--upper", "faces", "--speech", "talk.mp4"], r"talk.mp4"),
    ("speech-no-face", _upper_and("blank"), ["--upper", "faces", "--speech", "talk.mp4"],
     r"no speaking, emotion-free, frontal face frame"),
    ("out-is-file", _out_file, ["--upper", "faces", "--speech", "talk.mp4"], r"is a file, not a folder"),
    ("other-settings", _other_settings, ["--upper", "faces", "--speech", "talk.mp4"], r"made with other settings"),
    ("n-zero", _upper_and("clip"), ["--upper", "faces", "--speech", "talk.mp4", "--n", "0"], None),
    ("size-huge", _upper_and("clip"), ["--upper", "faces", "--speech", "talk.mp4", "--size", "100000"], None),
]:  # fmt: skip
    register(
        FuzzCase(
            f"synth/{cid}", "synth", "options", [*BASE, *extra], setup=setup, error_match=match,
            mutable=("out", "out/*"), timeout=120.0,
        )
    )  # fmt: skip
