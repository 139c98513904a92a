"""Exact resume: a run stopped after any record and resumed writes what an uninterrupted run writes — tracks,
smoothing and AU state continue from the checkpoint in ``<output>.state.json`` (in-process stops here; real SIGKILLs
in test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA

from ferkit.analysis.checkpoint import state_path
from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.analysis.records import RecordWriter
from ferkit.api import run_analysis
from ferkit.errors import InputError

CROWD = DATA / "clips" / "stage_hamilton.mp4"  # several faces: tracks appear, vanish and are followed by flow
TALKING = DATA / "video_labelled" / "happy" / "mead_M030_front_happy_level3_001.mp4"


class Stop(BaseException):
    """Stands in for a kill: raised by the writer after ``n`` records."""


def _run(out: Path, video: Path, opts: AnalyzeOptions, resume: bool = False, stop_after: int | None = None) -> int:
    """Records written by this run."""
    if stop_after is None:
        return run_analysis([video], out, out.suffix[1:], "ferkit", opts, resume=resume, plots=False).records
    write, n = RecordWriter.write, [0]

    def stopping(self: RecordWriter, rec) -> None:
        if n[0] == stop_after:
            raise Stop
        write(self, rec)
        n[0] += 1

    RecordWriter.write = stopping  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            run_analysis([video], out, out.suffix[1:], "ferkit", opts, resume=resume, plots=False)
    finally:
        RecordWriter.write = write  # type: ignore[method-assign]
    return n[0]


def _content(out: Path) -> bytes:
    if out.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(out).to_json(orient="records").encode()  # NaN-safe comparison
    return out.read_bytes()


@pytest.mark.parametrize(
    ("fmt", "video", "fps", "aus", "stops"),
    [
        ("jsonl", CROWD, 12.5, False, [2, 57, 140]),  # 2: YuNet finds two faces in the first frame, so the first
        # checkpoint comes after two records (with BlazeFace it was one)
        ("csv", CROWD, 12.5, False, [90]),
        ("parquet", CROWD, 12.5, False, [33]),
        ("jsonl", TALKING, None, True, [15, 61]),
    ],
)
def test_stopped_and_resumed_equals_uninterrupted(
    tmp_path: Path, fmt: str, video: Path, fps: float | None, aus: bool, stops: list[int]
) -> None:
    opts = AnalyzeOptions(fps=fps, aus=aus, au_processes=0, checkpoint_seconds=0.0)  # a checkpoint every frame
    full = tmp_path / f"full.{fmt}"
    total = _run(full, video, opts)
    expected = _content(full)
    assert json.loads(state_path(full).read_text())["checkpoint"]["frame_index"] > 0
    for stop in stops:
        out = tmp_path / f"cut{stop}.{fmt}"
        _run(out, video, opts, stop_after=stop)
        cp = json.loads(state_path(out).read_text())["checkpoint"]
        assert cp is not None and cp["source"] == str(video)  # taken after the last frame fully written
        redone = _run(out, video, opts, resume=True)
        assert _content(out) == expected, f"stopped after {stop} records"
        assert total - stop <= redone < total  # continued from the checkpoint, not from the start
        # resumed twice (the output is complete): nothing changes
        assert _run(out, video, opts, resume=True) == 0
        assert _content(out) == expected


def test_resume_refuses_other_settings_and_redoes_a_changed_input(tmp_path: Path) -> None:
    import shutil

    video = tmp_path / "v.mp4"
    shutil.copy(TALKING, video)
    out = tmp_path / "o.jsonl"
    opts = AnalyzeOptions(fps=None, checkpoint_seconds=0.0)
    _run(out, video, opts)
    expected = out.read_bytes()
    _run(out, video, opts, stop_after=40)
    before = out.read_bytes()
    for other in (AnalyzeOptions(fps=5.0), AnalyzeOptions(fps=None, detector="haar"), AnalyzeOptions(fps=None, k=5)):
        with pytest.raises(InputError, match="written with "):
            _run(out, video, other, resume=True)
        assert out.read_bytes() == before  # refused before anything is cut
    with pytest.raises(InputError, match="written with --tta"):
        run_analysis([video], out, "jsonl", _setup(tta="flip"), opts, resume=True, plots=False)
    video.touch()  # the input changed since the checkpoint: analysed again from its start, still exact
    _run(out, video, opts, resume=True)
    assert out.read_bytes() == expected


def _setup(**kw):
    from ferkit.analysis.setup import ModelSetup

    return ModelSetup("ferkit", **kw)


def _tamper(state: dict, how: str) -> None:
    cp = state["checkpoint"]["state"]
    if how == "box":
        cp["tracker"]["tracks"] = [{"face_id": 0, "box": [1, 2, 3], "score": 1, "keypoints": {}, "points": None}]
    elif how == "probs":
        cp["smoother"] = {"0": [[0.5, 0.5], 0, 0.0, -1, 0]}
    elif how == "types":
        cp["tracker"] = "x"
    elif how == "array":
        cp["aus"] = {
            "last": {},
            "baselines": {"0": {"buf": [["object", [1], [1]]], "offset": None}},
            "speech": {},
            "rules": [],
        }
    elif how == "schedule":
        cp["au_schedule"] = {"0": "soon"}


@pytest.mark.parametrize("how", ["box", "probs", "types", "array", "schedule"])
def test_a_damaged_checkpoint_costs_time_not_records(tmp_path: Path, how: str) -> None:
    aus = how in ("array", "schedule")
    opts = AnalyzeOptions(fps=None, aus=aus, au_processes=0, checkpoint_seconds=0.0)
    full, out = tmp_path / "full.jsonl", tmp_path / "o.jsonl"
    total = _run(full, TALKING, opts)
    _run(out, TALKING, opts, stop_after=30)
    doc = json.loads(state_path(out).read_text())
    _tamper(doc, how)
    state_path(out).write_text(json.dumps(doc))
    redone = _run(out, TALKING, opts, resume=True)
    assert out.read_bytes() == full.read_bytes()
    assert redone == total  # the checkpoint was not used: the video was analysed again from its start


def test_a_state_file_that_is_not_one_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    opts = AnalyzeOptions(fps=None, checkpoint_seconds=0.0)
    _run(out, TALKING, opts, stop_after=20)
    before = out.read_bytes()
    for junk in ("{not json", "[1, 2]", '{"version": 99, "settings": {}}'):
        state_path(out).write_text(junk)
        with pytest.raises(InputError, match="state"):
            _run(out, TALKING, opts, resume=True)
        assert out.read_bytes() == before


@pytest.fixture(scope="module")
def mined_clean(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``ferkit mine`` of the crowd clip, uninterrupted, with and without a per-source cap: the queues' face ids."""
    from ferkit.curation.filters import MineRules
    from ferkit.curation.mine import MineOptions, mine
    from ferkit.curation.queue import Queue

    out = {}
    for cap in (None, 4):
        q = tmp_path_factory.mktemp("mine") / "q"
        mine([CROWD], q, MineOptions(fps=3, cap=cap, rules=MineRules(min_confidence=1.01)))
        with Queue(q) as queue:
            out[cap] = sorted(r[0] for r in queue.query("SELECT id FROM faces"))
    return out


@pytest.mark.parametrize(("stop_after", "cap", "every"), [(1, None, 0.0), (5, None, 0.0), (6, 4, 0.0), (5, None, 3600)])
def test_mine_stopped_after_any_face_and_rerun_equals_uninterrupted(
    tmp_path: Path, mined_clean: dict, stop_after: int, cap: int | None, every: float
) -> None:
    """``mine`` is resumable in the exact sense: stopped after ``stop_after`` stored faces (with a cap: after faces
    were evicted) and rerun, the queue holds exactly the faces (and images) of an uninterrupted run — continued from
    the last checkpoint (``every`` seconds of work; 3600: none yet, the source is mined again from its start)."""
    from ferkit.curation.filters import MineRules
    from ferkit.curation.mine import MineOptions, mine
    from ferkit.curation.queue import Queue

    opts = MineOptions(fps=3, cap=cap, rules=MineRules(min_confidence=1.01), checkpoint_seconds=every)
    add, n = Queue.add_face, [0]

    def stopping(self: Queue, face, cap=None):
        if n[0] == stop_after:
            raise Stop
        n[0] += 1
        return add(self, face, cap)

    Queue.add_face = stopping  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            mine([CROWD], tmp_path / "q", opts)
    finally:
        Queue.add_face = add  # type: ignore[method-assign]
    rerun = mine([CROWD], tmp_path / "q", opts)
    assert rerun.resumed == (every == 0)
    with Queue(tmp_path / "q") as queue:
        ids = sorted(r[0] for r in queue.query("SELECT id FROM faces"))
    assert len(mined_clean[None]) > 6 and len(mined_clean[4]) == 4  # the stops fall mid-run; the cap evicts
    assert ids == mined_clean[cap]
    assert sorted(p.stem for p in (tmp_path / "q" / "crops").iterdir()) == ids
