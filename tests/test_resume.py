"""``--resume`` bookkeeping without a model: record names, foreign files, identity of sources, de-duplication."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ferkit.analysis.checkpoint import Checkpoint
from ferkit.analysis.records import source_name, source_path
from ferkit.analysis.resume import by_identity, resume_points
from ferkit.errors import InputError
from ferkit.media.files import collect_inputs


def _rec(src: str, idx: int, model: str = "m") -> str:
    return json.dumps({"source": src, "frame_index": idx, "face_id": 0, "model": model}) + "\n"


def test_source_names_are_utf8_and_name_their_file() -> None:
    name = os.fsdecode(b"caf\xe9.jpg")
    assert source_name(name) == "caf\\xe9.jpg" and source_name(name).encode("utf-8")
    assert source_path(source_name(name)) == Path(name)
    assert source_name("café.jpg") == "café.jpg" and source_path("café.jpg") == Path("café.jpg")


def test_resume_points_cut_after_the_checkpoint_or_redo_the_last_source(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    recs = _rec("a.jpg", 0) + _rec("v.mp4", 0) + _rec("v.mp4", 1) + _rec("v.mp4", 2) + _rec("v.mp4", 2)
    out.write_text(recs + '{"source": "v.m')
    cp = Checkpoint("v.mp4", 1, {"tracker": {}}, {})
    assert resume_points(out, "jsonl", False, "m", checkpoint=cp) == ({"a.jpg": 0, "v.mp4": 1}, cp)
    assert out.read_text() == _rec("a.jpg", 0) + _rec("v.mp4", 0) + _rec("v.mp4", 1)
    # a checkpoint of another source, or of a frame with no records, does not apply: v.mp4 starts again
    for other in (Checkpoint("w.mp4", 1, {}, {}), Checkpoint("v.mp4", 7, {}, {}), None):
        out.write_text(recs)
        assert resume_points(out, "jsonl", False, "m", checkpoint=other) == ({"a.jpg": 0}, None)
        assert out.read_text() == _rec("a.jpg", 0)


@pytest.mark.parametrize(
    "content",
    [b'{"hello": 1}\n', b"notes\nmore", bytes(range(256)), b'{"source": 5, "frame_index": "x", "model": "m"}\n'],
)
def test_resume_refuses_a_foreign_file_untouched(tmp_path: Path, content: bytes) -> None:
    out = tmp_path / "r.jsonl"
    out.write_bytes(content)
    with pytest.raises(InputError, match="not a ferkit records file"):
        resume_points(out, "jsonl", False, "m")
    assert out.read_bytes() == content


def test_resume_refuses_another_model_and_other_csv_columns(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_rec("a.jpg", 0, "other"))
    with pytest.raises(InputError, match="written by model 'other'"):
        resume_points(out, "jsonl", False, "m")
    csv = tmp_path / "r.csv"
    csv.write_text("source,frame_index,model,p_happy\na.jpg,0,m,0.5\n")
    with pytest.raises(InputError, match="another model or class list"):
        resume_points(csv, "csv", False, "m", ["source", "frame_index", "model", "p_sad"])
    assert resume_points(csv, "csv", False, "m", ["source", "frame_index", "model", "p_happy"]) == ({}, None)


def test_resume_points_and_inputs_follow_file_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to("in/a.jpg")
    assert collect_inputs(["in/a.jpg", "in/../in/a.jpg", "in", "link.jpg"]) == [Path("in/a.jpg")]
    points = {"in/a.jpg": 3, "gone.mp4": 7}
    assert by_identity(points, [Path("link.jpg"), tmp_path / "in" / "a.jpg"]) == {
        "link.jpg": 3,
        str(tmp_path / "in" / "a.jpg"): 3,
    }
    assert by_identity(points, [Path("gone.mp4")]) == {"gone.mp4": 7}  # a name that no longer exists: as written
