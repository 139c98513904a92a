"""Action units end to end on real faces: CK+ crops through `ferkit analyze --crops --aus`, mirrored faces swap
their left/right AUs, the shipped files are hash-checked, video records carry speaking and rules, every format
round-trips the AU fields, and a run without --aus writes exactly what it wrote before."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, VIDEO

from ferkit.analysis.records import AU_FIELDS, BASE_FIELDS, read_records, record_schema, to_record_dicts
from ferkit.errors import ModelError
from ferkit.faces.aus import AU_KEYS, AuModel, LandmarkerPool, still_crop

CKPLUS = DATA / "ckplus_au"


def ckplus_labels() -> dict[str, dict[str, str]]:
    with open(CKPLUS / "labels.csv", newline="") as f:
        return {row["seq"]: row for row in csv.DictReader(f)}


def peak_images(n: int) -> list[Path]:
    """The peak frames of the first ``n`` sequences (sorted)."""
    rows = sorted(ckplus_labels().values(), key=lambda r: r["seq"])[:n]
    return [CKPLUS / "images" / r["peak_image"] for r in rows]


def test_au_presence_follows_facs_codes_on_ckplus(tmp_path: Path) -> None:
    """Peak frames of 40 CK+ sequences: AU12 (smile) and AU25 (lips part) are present far more often where FACS
    coded them than where it did not. (The subject-grouped CV figures are in benchmarks/au_ckplus.py; these
    sequences were in the heads' training data, so this checks the wiring, not generalisation.)"""
    import ferkit

    files = peak_images(40)
    labels = ckplus_labels()
    recs = ferkit.analyze(files, crops=True, aus=True)
    assert [set(r["aus"]) for r in recs] == [set(AU_KEYS)] * len(files)
    for au in ("AU12", "AU25"):
        coded = np.array([labels[Path(r["source"]).name.rsplit("_", 1)[0]][au] == "1" for r in recs])
        present = np.array([r["aus"][au] >= 0.5 for r in recs])
        assert coded.any() and (~coded).any()
        assert present[coded].mean() >= 0.7 and present[~coded].mean() <= 0.3, au


def test_mirrored_faces_swap_left_and_right() -> None:
    """A face and its mirror image: AU12_L of one ≈ AU12_R of the other (the lateral heads see mirrored features)."""
    pool, model = LandmarkerPool(), AuModel.load()
    for path in peak_images(12):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        a, b = pool.fit(still_crop(rgb)), pool.fit(still_crop(rgb[:, ::-1].copy()))
        assert a is not None and b is not None
        pa, pb = model.predict(a.features)[0], model.predict(b.features)[0]
        for au in ("AU02", "AU12", "AU14"):
            assert abs(pa[f"{au}_L"] - pb[f"{au}_R"]) < 0.2, (path.name, au)


def test_no_fit_is_a_record_with_a_reason(tmp_path: Path) -> None:
    import ferkit

    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((48, 48), 128, np.uint8))
    (rec,) = ferkit.analyze(blank, crops=True, aus=True)
    assert rec["aus"] is None and "landmarker" in rec["aus_reason"] and rec["emotion"] is not None


def test_altered_shipped_files_are_refused(tmp_path: Path) -> None:
    from ferkit.faces.aus import HEADS_FILE
    from ferkit.faces.landmarker import LANDMARKER_FILE, LANDMARKER_SHA256, FaceLandmarker

    bad = tmp_path / "face_landmarker.task"
    data = bytearray(LANDMARKER_FILE.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError) as e:
        FaceLandmarker(bad)
    assert str(bad) in str(e.value) and LANDMARKER_SHA256 in str(e.value) and "\n" not in str(e.value)
    heads = tmp_path / "au_heads.json"
    heads.write_text(HEADS_FILE.read_text().replace('"AU1"', '"AU1 "', 1))
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        AuModel.load(heads)


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 4 s of the shared clip at 10 fps with --aus, as CSV (the CLI, as a user runs it)."""
    tmp = tmp_path_factory.mktemp("aus")
    clip = tmp / "clip.mp4"
    import av

    from ferkit.media.samples import write_video

    with av.open(str(VIDEO)) as c:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(120), c.decode(video=0), strict=False)]
    write_video(frames, clip, fps=30)
    out = tmp / "clip.csv"
    cmd = [sys.executable, "-m", "ferkit.cli", "analyze", str(clip), "--aus", "--fps", "10", "--format", "csv"]
    cmd += ["-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    assert done.returncode == 0, done.stderr
    return out


def test_video_records_carry_aus_speaking_and_rules(video_run: Path) -> None:
    frame = read_records(video_run)
    assert list(frame.columns) == [*BASE_FIELDS, *AU_FIELDS]
    faces = frame.dropna(subset=["face_id"])
    assert len(faces) >= 35 and faces["aus"].map(lambda a: isinstance(a, dict)).all()
    speaking = faces["speaking"].dropna()
    assert len(speaking) >= len(faces) - 6  # the first ~0.3-0.6 s of the track has no answer yet
    assert speaking.mean() > 0.5  # she talks throughout
    assert faces["hard_case_rules"].map(lambda v: isinstance(v, list)).all()
    assert video_run.with_suffix(".aus.png").is_file()
    header = video_run.read_text().splitlines()[0].split(",")
    assert {f"au_{k}" for k in AU_KEYS} <= set(header) and {f"au_intensity_{k}" for k in AU_KEYS} <= set(header)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_formats_round_trip_the_au_fields(video_run: Path, tmp_path: Path, fmt: str) -> None:
    from jsonschema import Draft202012Validator

    from ferkit.analysis.records import RecordWriter
    from ferkit.api import analyze

    recs = analyze(peak_images(3), crops=True, aus=True, output=tmp_path / f"r.{fmt}", fmt=fmt)
    back = to_record_dicts(read_records(tmp_path / f"r.{fmt}"))
    assert back == recs
    validator = Draft202012Validator(record_schema())
    for r in back:
        validator.validate(r)
    assert RecordWriter  # the writer is what analyze used; a CSV of the same records reads back the same:
    csv_back = to_record_dicts(read_records(video_run))
    for r in csv_back:
        validator.validate(r)


def test_without_aus_nothing_changes(tmp_path: Path) -> None:
    import ferkit

    recs = ferkit.analyze(peak_images(2), crops=True)
    assert all(set(r) == set(BASE_FIELDS) for r in recs)
    out = tmp_path / "r.csv"
    ferkit.analyze(peak_images(2), crops=True, output=out, fmt="csv")
    assert not any(c.startswith("au_") for c in out.read_text().splitlines()[0].split(","))


def test_resume_must_keep_the_au_setting(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for p in peak_images(2):
        shutil.copy(p, src / p.name)
    out = tmp_path / "r.jsonl"
    base = [sys.executable, "-m", "ferkit.cli", "analyze", str(src), "--crops", "-o", str(out), "--no-plots"]
    assert subprocess.run([*base, "--aus"], capture_output=True, text=True).returncode == 0
    before = out.read_text()
    done = subprocess.run([*base, "--resume"], capture_output=True, text=True)
    assert done.returncode == 2 and "written with --aus" in done.stderr
    assert out.read_text() == before
    assert json.loads(before.splitlines()[0])["aus"] is not None


def test_bad_rules_file_is_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text('[speech_action]\nwhen = "speaking"\n[[rules]]\ncode = "x"\nwhen = "AU99"\n')
    img = peak_images(1)[0]
    cmd = [sys.executable, "-m", "ferkit.cli", "analyze", str(img), "--crops", "--aus", "--rules", str(rules)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "rule 'x': when: unknown name 'AU99'" in done.stderr
    assert "Traceback" not in done.stderr


def test_au_schedule_fits_each_track_at_most_rate_per_second() -> None:
    from ferkit.analysis.au_tracks import AuSchedule

    schedule = AuSchedule(15.0)
    due = [schedule.due([0], i / 30) for i in range(30)]  # one second of a 30 frames/s video
    assert [d[0] for d in due] == [True, False] * 15
    assert schedule.due([0, 1], 30 / 30) == [True, True] and schedule.due([0, 1], 31 / 30) == [False, False]
    assert schedule.due([1, 2], 32 / 30) == [True, True]  # a new track is fitted at once
    copy = AuSchedule(15.0)
    copy.restore(json.loads(json.dumps(schedule.state())))
    assert copy.due([1, 2, 3], 33 / 30) == schedule.due([1, 2, 3], 33 / 30) == [False, False, True]
    assert all(AuSchedule(None).due([0], i / 30) == [True] for i in range(5))  # None: every frame
    assert AuSchedule(15.0).due([0, 1], None) == [True, True]  # stills: always


def test_video_fits_at_au_fps_and_repeats_fields_between() -> None:
    import ferkit

    clip = DATA / "video_labelled" / "happy" / "mead_M030_front_happy_level3_001.mp4"
    fitted: list[int] = []
    fit_many = LandmarkerPool.fit_many

    def counting(self, crops, sizes):
        fitted.append(len(crops))
        return fit_many(self, crops, sizes)

    LandmarkerPool.fit_many = counting  # type: ignore[method-assign]
    runs, counts = {}, {}
    try:
        for rate in (None, 15.0):
            fitted.clear()
            recs = ferkit.analyze(clip, fps=None, aus=True, au_processes=0, au_fps=rate)
            runs[rate], counts[rate] = [r for r in recs if r["face_id"] is not None], sum(fitted)
    finally:
        LandmarkerPool.fit_many = fit_many  # type: ignore[method-assign]
    every, capped = runs[None], runs[15.0]
    assert counts[None] == len(every) and len(capped) == len(every) >= 60  # the same faces either way
    assert abs(counts[15.0] - len(capped) / 2) <= 3  # a 30 frames/s clip: every second face frame is fitted
    changed = [a["aus"] != b["aus"] for a, b in itertools.pairwise(capped)]
    assert sum(changed) <= counts[15.0]  # fields change only where a fit is new; held frames repeat the one before
    assert sum(a["aus"] != b["aus"] for a, b in itertools.pairwise(every)) > len(every) * 0.9
    keys = list(every[0]["aus"])
    diff = np.array([[a["aus"][k] - b["aus"][k] for k in keys] for a, b in zip(every, capped, strict=True)])
    jitter = np.array([[a["aus"][k] - b["aus"][k] for k in keys] for a, b in itertools.pairwise(every)])
    print("mean |every - capped|", np.abs(diff).mean(), "frame-to-frame", np.abs(jitter).mean())
    assert np.abs(diff).mean() < 1.5 * np.abs(jitter).mean()  # holding a fit costs about one frame's change
