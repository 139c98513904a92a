"""``ferkit evaluate`` on labelled videos (``<emotion>/<clip>.mp4``): frame and clip levels on real MEAD clips."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, fer_files
from test_cli import assert_clean_error, ferkit

import ferkit as fk
from ferkit.evaluation.reports import markdown_report, markdown_table
from ferkit.evaluation.scoring import NO_FACE
from ferkit.evaluation.videos import ClipResult
from ferkit.media.video import video_info
from ferkit.models.loading import load_model

LABELLED = DATA / "video_labelled"


def clip(emotion: str) -> Path:
    return next((LABELLED / emotion).glob("*.mp4"))


def link(root: Path, folder: str, src: Path) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / src.name).symlink_to(src)
    return root / folder / src.name


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two labelled clips (one under the alias folder ``anger``), contempt, and a 2 s blank clip as neutral."""
    from ferkit.media.samples import write_video

    root = tmp_path_factory.mktemp("videos") / "mead"
    link(root, "anger", clip("angry"))
    link(root, "happy", clip("happy"))
    link(root, "contempt", clip("contempt"))
    (root / "neutral").mkdir()
    write_video([np.full((128, 128, 3), 120, np.uint8)] * 50, root / "neutral" / "blank.mp4", fps=25)
    return root


@pytest.fixture(scope="module")
def doc(videos: Path) -> dict:
    """Two models (ferkit raw and calibrated) on the video folder, as ``--model a --model b`` does."""
    return fk.evaluate(videos, [load_model("ferkit", calibration=False), load_model("ferkit")])


def sampled(path: Path) -> int:
    """Frames the 5 fps sampler takes: one per 0.2 s instant up to the last frame's time (25 fps: every fifth)."""
    info = video_info(path)
    return int((info.frames - 1) / info.fps / 0.2 + 1e-6) + 1


def test_counts_follow_the_clip_durations(doc: dict, videos: Path) -> None:
    for b in doc["results"]:
        rows = {Path(r["clip"]).parent.name: r for r in b["per_clip"]}
        assert set(rows) == {"anger", "happy", "neutral"}  # contempt is not scored
        for r in rows.values():
            assert r["frames_scored"] + r["frames_without_face"] == sampled(Path(r["clip"]))
        assert sampled(clip("angry")) == len(range(0, 98, 5)) == 20  # 98 frames at 25 fps
        assert rows["anger"]["frames_without_face"] == rows["happy"]["frames_without_face"] == 0
        assert rows["neutral"]["frames_scored"] == 0 and rows["neutral"]["predicted"] == NO_FACE
        assert rows["anger"]["true"] == "angry"
        assert b["n"] == sum(r["frames_scored"] for r in rows.values())
        assert b["frames_without_face"] == rows["neutral"]["frames_without_face"] == 10  # 2 s at 5 fps
        assert b["clip_level"]["n"] == 3 and b["clip_level"]["misses"] == 1


def test_skipped_classes_and_alias_mapping(doc: dict) -> None:
    for b in doc["results"]:
        assert b["skipped_classes"] == {"contempt": 1}
        assert b["protocol"]["class_mapping"] == {"anger": "angry", "happy": "happy", "neutral": "neutral"}
        assert b["frame_label"] == "smoothed_emotion" and b["protocol"]["fps"] == 5.0
        assert b["protocol"]["tta"] == "none"  # auto means no flip for video, as in analyze


def test_both_levels_are_consistent_with_the_clip_rows(doc: dict) -> None:
    for b in doc["results"]:
        rows = b["per_clip"]
        n = b["n"]
        correct = sum(r["shares"][r["true"]] * r["frames_scored"] for r in rows)
        assert b["accuracy"] == pytest.approx(correct / n, abs=1e-3)
        assert b["clip_level"]["accuracy"] == pytest.approx(np.mean([r["true"] == r["predicted"] for r in rows]))
        cm = np.array(b["clip_level"]["confusion_matrix"]["matrix"])
        assert cm.sum() == 2  # the no-face clip is a miss, outside the matrix
        assert 0 <= b["macro_f1"] <= 1 and 0 <= b["clip_level"]["macro_f1"] <= 1
        for r in rows:
            if r["frames_scored"]:
                assert sum(r["shares"].values()) == pytest.approx(1.0, abs=1e-3)
                assert r["shares"][r["predicted"]] == max(r["shares"].values())  # the clip label is the majority


def test_clip_label_is_the_majority_of_analyze_s_smoothed_labels(doc: dict) -> None:
    """The same clip through ``ferkit.analyze``: its smoothed labels' majority and shares are the report's."""
    row = next(r for r in doc["results"][1]["per_clip"] if r["true"] == "happy")
    recs = fk.analyze(os.path.realpath(row["clip"]))
    counts = Counter(r["smoothed_emotion"] for r in recs if r["face_id"] is not None)
    assert sum(counts.values()) == row["frames_scored"]
    assert row["predicted"] == counts.most_common(1)[0][0]
    assert {c: round(k / row["frames_scored"], 4) for c, k in counts.items()} == {
        c: v for c, v in row["shares"].items() if v
    }


def test_tie_goes_to_the_larger_summed_probability() -> None:
    c = ClipResult("x.mp4", "happy", ["sad", "happy"], [np.array([0.1, 0.9]), np.array([0.6, 0.4])])
    assert c.clip_label(["happy", "sad"]) == "sad"  # 1 vote each; sad sums 1.3 against 0.7
    assert ClipResult("y.mp4", "happy").clip_label(["happy", "sad"]) == NO_FACE


def test_markdown_shows_both_levels_and_the_clips(doc: dict) -> None:
    rows = markdown_table(doc).splitlines()[2:]
    assert len(rows) == 4 and "mead (frames)" in rows[0] and "mead (clips)" in rows[1]
    md = markdown_report(doc)
    assert md.count("## Clips of") == 2 and "mead_M030_front_happy_level3_001.mp4" in md
    assert "{'contempt': 1}" in md


def test_cli_writes_both_levels(tmp_path: Path, videos: Path) -> None:
    report = tmp_path / "r.json"
    res = ferkit("evaluate", videos, "--report", report, "--fps", "5", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (block,) = json.loads(report.read_text())["results"]
    assert block["unit"] == "frames" and block["clip_level"]["unit"] == "clips"
    assert len(block["per_clip"]) == 3 and block["skipped_classes"] == {"contempt": 1}
    assert "frames" in res.stdout and "clips" in res.stdout and "contempt" in res.stderr and "Warning" not in res.stderr


def test_images_after_videos_keep_the_image_tta(tmp_path: Path) -> None:
    """One call over a video folder and an image folder: each keeps its own ``auto`` TTA and kind of block."""
    link(tmp_path / "v", "happy", clip("happy"))
    for p in fer_files("test", 1, ["happy", "sad"]):
        (tmp_path / "i" / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "i" / p.parent.name / p.name)
    vid, img = fk.evaluate([tmp_path / "v", tmp_path / "i"], crops=True)["results"]
    assert vid["protocol"]["tta"] == "none" and "clip_level" in vid and vid["n"] == vid["per_clip"][0]["frames_scored"]
    assert img["protocol"]["tta"] == "flip" and "clip_level" not in img and img["n"] == 2


def test_corrupt_video_is_a_one_line_error(tmp_path: Path) -> None:
    link(tmp_path / "ds", "happy", clip("happy"))
    (tmp_path / "ds" / "sad").mkdir()
    (tmp_path / "ds" / "sad" / "broken.mp4").write_bytes(os.urandom(64))
    assert_clean_error(ferkit("evaluate", tmp_path / "ds", cwd=tmp_path), "broken.mp4: not a readable video")


def test_mixed_images_and_videos_is_a_one_line_error(tmp_path: Path) -> None:
    link(tmp_path / "ds", "happy", clip("happy"))
    shutil.copy(fer_files("test", 1, ["sad"])[0], tmp_path / "ds" / "happy" / "face.jpg")
    res = ferkit("evaluate", tmp_path / "ds", cwd=tmp_path)
    assert_clean_error(res, "hold both images (1) and videos (1)")


def test_no_face_anywhere_and_validation_split_are_refused(tmp_path: Path, videos: Path) -> None:
    from ferkit.errors import InputError

    link(tmp_path / "ds", "neutral", videos / "neutral" / "blank.mp4")
    with pytest.raises(InputError, match="no face found in any of its 1 clip"):
        fk.evaluate(tmp_path / "ds")
    with pytest.raises(InputError, match="a video dataset is scored with --split all"):
        fk.evaluate(videos, split="validation")
