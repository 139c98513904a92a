"""``ferkit synth speech-action`` on real faces and a real talking clip: composites keep the upper face and take the
speaker's lower face, the manifest says where each part came from, an interrupted run resumes to the same files, and
bad input is one line."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, FER

from ferkit.curation.speech_action import SynthSettings, synthesize
from ferkit.errors import InputError

CLIP = DATA / "clips" / "edtalk_mouth_source.mp4"  # 10 s, a woman talking, no audio stream


def _settings(**kw) -> SynthSettings:
    base = {"upper": [str(FER / "train")], "speech": [str(CLIP)], "classes": [], "n": 8, "size": 48, "seed": 3}
    return SynthSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synth") / "sa"
    return out, synthesize(_settings(), out)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_composites_keep_the_upper_face_and_take_the_speakers_mouth(made) -> None:
    out, summary = made
    rows = _rows(out)
    assert len(rows) == 8 == summary.made and summary.speakers == {"edtalk_mouth_source": 8}
    donor = summary.donors[0]
    assert donor.faces > donor.speaking >= donor.no_emotion_aus >= donor.used > 0 and donor.audio_voice is None
    top, bottom = [], []
    for r in rows:
        assert r["label"] == "speech_action" and r["upper_label"] != "neutral"
        assert r["donor_audio"] == "" and float(r["donor_speaking"]) >= 0.5
        comp = cv2.imread(str(out / r["file"]), cv2.IMREAD_UNCHANGED)
        upper = cv2.imread(r["upper"], cv2.IMREAD_GRAYSCALE)
        assert comp.shape == (48, 48) and comp.dtype == np.uint8  # FER2013 is gray: so is the composite
        diff = np.abs(comp.astype(float) - upper.astype(float))
        top.append(diff[4:16].mean())  # brows and eyes
        bottom.append(diff[32:44].mean())  # mouth and chin
    assert np.median(top) < 10 and np.median(bottom) > 2 * np.median(top), (top, bottom)


def test_an_interrupted_run_resumes_to_the_same_files(made, tmp_path: Path) -> None:
    import shutil

    out, _ = made
    copy = tmp_path / "sa"
    shutil.copytree(out, copy)
    lines = (copy / "manifest.csv").read_text().splitlines(keepends=True)
    last = _rows(copy)[-1]
    (copy / last["file"]).unlink()
    (copy / "manifest.csv").write_text("".join(lines[:-2]) + lines[-2][:20])  # two rows lost, one torn mid-line
    summary = synthesize(_settings(), copy)
    assert summary.resumed == 6 and summary.made == 2
    assert _rows(copy) == _rows(out)
    for r in _rows(out):
        assert (copy / r["file"]).read_bytes() == (out / r["file"]).read_bytes()
    with pytest.raises(InputError, match="other settings \\(seed\\)"):
        synthesize(_settings(seed=4), copy)


@pytest.mark.parametrize(
    "args",
    [
        ["--upper", "missing_dir", "--speech", str(CLIP)],
        ["--upper", str(FER / "train"), "--speech", str(FER / "train" / "angry" / "Training_10118481.jpg")],
        ["--upper", str(FER / "train"), "--speech", str(CLIP), "--classes", "boredom"],
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "ferkit.cli", "synth", "speech-action", "--out", str(tmp_path / "o"), *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o").exists()
