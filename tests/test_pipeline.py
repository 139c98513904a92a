"""End to end through the Python API: image|video × one|several faces × batch 1|many, records valid."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import VIDEO

import ferkit
from ferkit.analysis.records import record_schema
from ferkit.analysis.smoothing import count_switches

SCHEMA = record_schema()


def valid(records: list[dict]) -> list[dict]:
    for r in records:
        jsonschema.validate(r, SCHEMA)
    return records


def test_single_photo_one_face() -> None:
    from ferkit.media.samples import sample_image

    (rec,) = valid(ferkit.analyze(sample_image()))
    assert rec["face_id"] == 0 and rec["timestamp"] is None and rec["alignment"] == "keypoints"
    assert abs(sum(rec["probabilities"].values()) - 1) < 1e-3
    assert rec["smoothed_emotion"] == rec["emotion"]


def test_photo_with_four_faces(grid_image: Path) -> None:
    recs = valid(ferkit.analyze(grid_image))
    assert len(recs) == 4 and len({r["face_id"] for r in recs}) == 4
    half = 288  # each tile is a 72-px padded crop upscaled 4×
    centres = sorted((r["box"][1] + r["box"][3] / 2 > half, r["box"][0] + r["box"][2] / 2 > half) for r in recs)
    assert centres == [(False, False), (False, True), (True, False), (True, True)]  # one face per tile
    assert {r["emotion"] for r in recs} & {"happy", "surprise"}


def test_folder_of_crops_batch(crops_folder: Path) -> None:
    recs = valid(ferkit.analyze(crops_folder, crops=True))
    assert len(recs) == 14  # 2 bad files skipped
    assert all(r["alignment"] == "crop" and r["box"][2:] == [48, 48] for r in recs)
    truth = [Path(r["source"]).name.split("_")[0] for r in recs]
    assert np.mean([t == r["emotion"] for t, r in zip(truth, recs, strict=True)]) >= 0.5


def test_video_one_face_timestamps_and_ids() -> None:
    df = ferkit.analyze(VIDEO, fps=5, as_dataframe=True)
    valid(df.to_dict("records"))
    assert df["face_id"].notna().all() and set(df["face_id"]) == {0}
    ts = df["timestamp"].to_numpy()
    assert np.all(np.diff(ts) > 0) and ts[0] == 0 and 15.0 < ts[-1] < 15.49
    assert len(df) == 78


def test_records_do_not_depend_on_batching_or_workers() -> None:
    """Batches scored in parallel worker threads come back in frame order with the same values."""
    serial = ferkit.analyze(VIDEO, fps=10, batch_frames=32, model_workers=1)
    parallel = ferkit.analyze(VIDEO, fps=10, batch_frames=5, model_workers=3)
    assert len(serial) == len(parallel) > 140 and serial == parallel


def test_video_two_faces_stable_ids(two_face_video: Path) -> None:
    recs = valid(ferkit.analyze(two_face_video, fps=None))
    by_frame: dict[int, list[dict]] = {}
    for r in recs:
        by_frame.setdefault(r["frame_index"], []).append(r)
    assert len(by_frame) >= 85 and all(len(v) == 2 for v in by_frame.values())
    ids = {tuple(r["face_id"] for r in sorted(v, key=lambda r: r["box"][0])) for v in by_frame.values()}
    assert len(ids) == 1 and set(next(iter(ids))) == {0, 1}  # left face keeps one id, right face the other
    assert {r["alignment"] for r in recs} == {"keypoints"}


def test_frames_without_faces_are_records(blank_video: Path) -> None:
    recs = valid(ferkit.analyze(blank_video, fps=None))
    assert len(recs) == 10
    assert all(r["face_id"] is None and r["emotion"] is None and r["timestamp"] is not None for r in recs)


def test_smoothing_reduces_label_switches() -> None:
    recs = ferkit.analyze(VIDEO, fps=None)
    raw = count_switches(r["emotion"] for r in recs)
    smooth = count_switches(r["smoothed_emotion"] for r in recs)
    assert raw >= 5, "the talking-face video should make frame labels flicker"
    assert smooth < raw / 3


def test_smoother_hysteresis_on_hand_made_sequence() -> None:
    from ferkit.analysis.smoothing import smooth_sequence

    a, b = np.array([0.8, 0.2]), np.array([0.2, 0.8])
    seq = np.array([a, a, b, a, a, b, b, b, b, b, b])  # one-sample blip, then a lasting change
    labels, _ = smooth_sequence(np.arange(len(seq)) * 0.1, seq, tau=0.1, margin=0.1, k=3)
    assert labels[:5] == [0] * 5 and labels[-1] == 1
    assert count_switches(labels) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_formats_round_trip_to_valid_records(tmp_path: Path, grid_image: Path, fmt: str) -> None:
    from ferkit.analysis.records import read_records, to_record_dicts

    out = tmp_path / f"r.{fmt}"
    recs = ferkit.analyze(grid_image, output=out, fmt=fmt)
    back = valid(to_record_dicts(read_records(out)))
    assert len(back) == len(recs) == 4
    for a, b in zip(recs, back, strict=True):
        assert a["face_id"] == b["face_id"] and a["emotion"] == b["emotion"] and b["timestamp"] is None
        assert np.allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-5)


def test_explicit_bad_file_raises_in_api(tmp_path: Path) -> None:
    from ferkit.errors import InputError

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="not an image"):
        ferkit.analyze(bad)


def test_stills_share_batches_in_input_order(tmp_path: Path, crops_folder: Path) -> None:
    """Consecutive images are scored in shared batches (as video frames are) without changing any record; a bad
    file named explicitly stops the run after the images before it are written."""
    from ferkit.errors import InputError

    images = [p for p in sorted(crops_folder.glob("*.jpg")) if p.name != "broken.jpg"][:9]
    mixed = [*images[:4], VIDEO, *images[4:]]
    one_by_one = ferkit.analyze(mixed, fps=1, crops=True, batch_frames=1, model_workers=1)
    batched = ferkit.analyze(mixed, fps=1, crops=True, batch_frames=3, model_workers=2)
    assert one_by_one == batched
    assert [Path(r["source"]).name for r in batched if r["timestamp"] is None] == [p.name for p in images]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    out = tmp_path / "out.jsonl"
    with pytest.raises(InputError, match=r"bad\.jpg"):
        ferkit.analyze([*images[:5], bad, images[5]], output=out, crops=True, batch_frames=2)
    assert [Path(json.loads(line)["source"]).name for line in out.read_text().splitlines()] == [
        p.name for p in images[:5]
    ]
