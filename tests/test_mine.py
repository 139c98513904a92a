"""``ferkit mine``: hard faces from real clips into a SQLite queue — kept once, static faces dropped, resumable."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, ROOT, VIDEO

from ferkit.curation.filters import MineRules
from ferkit.curation.mine import MineOptions, mine
from ferkit.curation.queue import SCHEMA_VERSION, Queue
from ferkit.curation.stats import queue_stats, write_summary
from ferkit.errors import InputError

CLIPS = DATA / "clips"
SHORT = CLIPS / "styletalk_feifeili_clip3.mp4"  # 7 s, one face
SINGLE = CLIPS / "pyfeat_single_face.mp4"  # 2.4 s, one face
EVERY_FACE = MineRules(min_confidence=1.01)  # every face is a candidate (low_confidence): the filters decide


def support():
    """benchmarks/curation_support.py (clips and browser helpers shared with the benchmark)."""
    spec = importlib.util.spec_from_file_location("curation_support", ROOT / "benchmarks" / "curation_support.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ids(queue: Path) -> list[str]:
    with sqlite3.connect(queue / "queue.sqlite") as c:
        return sorted(r[0] for r in c.execute("SELECT id FROM faces"))


@pytest.fixture(scope="module")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    q = tmp_path_factory.mktemp("queue") / "q"
    return q, mine([SHORT, SINGLE], q, MineOptions(fps=3, rules=EVERY_FACE))


def test_mine_stores_each_kept_face_once_with_crop_context_and_metadata(mined) -> None:
    q, summary = mined
    assert summary.sources == 2 and summary.faces_seen > 20 and summary.candidates == summary.faces_seen
    with Queue(q) as queue:
        rows = [queue.face(i) for i in _ids(q)]
        mode = queue.query("PRAGMA journal_mode")[0][0]
    assert mode == "wal"
    assert len(rows) == summary.kept > 5
    # a talking head sampled at 3 fps: most frames of the one track repeat a kept face and are dropped as such
    assert summary.dropped["near_duplicate"] > 0
    assert summary.kept + sum(summary.dropped.values()) == summary.candidates
    for r in rows:
        assert r["reasons"] and "low_confidence" in r["reasons"] and r["priority"] > 1
        assert set(r["probabilities"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
        assert r["source"].endswith((SHORT.name, SINGLE.name)) and r["timestamp"] is not None
        crop, ctx = q / "crops" / f"{r['id']}.png", q / "context" / f"{r['id']}.jpg"
        assert crop.read_bytes()[:4] == b"\x89PNG" and ctx.read_bytes()[:2] == b"\xff\xd8"
    assert len(list((q / "crops").iterdir())) == len(rows)  # no orphan images


def test_rerun_adds_nothing_and_a_half_done_source_is_mined_again_without_duplicates(mined) -> None:
    q, _ = mined
    before = _ids(q)
    again = mine([SHORT, SINGLE], q, MineOptions(fps=3, rules=EVERY_FACE))
    assert again.already_done == 2 and again.kept == 0 and _ids(q) == before
    with sqlite3.connect(q / "queue.sqlite") as c:  # as if killed during the first source
        c.execute("UPDATE sources SET status='running'")
    third = mine([SINGLE, SHORT], q, MineOptions(fps=3, rules=EVERY_FACE))
    assert third.sources == 2 and third.kept == 0 and _ids(q) == before


def test_cap_keeps_the_highest_priority_faces_of_a_source(tmp_path: Path, mined) -> None:
    q, _ = mined
    with Queue(q) as queue:
        ranked = queue.query("SELECT id FROM faces WHERE source LIKE ? ORDER BY priority DESC, id", (f"%{SHORT.name}",))
    capped = mine([SHORT], tmp_path / "capped", MineOptions(fps=3, cap=3, rules=EVERY_FACE))
    assert _ids(tmp_path / "capped") == sorted(r[0] for r in ranked[:3])
    assert capped.dropped["cap"] == len(ranked) - 3
    assert len(list((tmp_path / "capped" / "crops").iterdir())) == 3  # evicted faces' images are removed


def test_static_face_pasted_into_a_real_clip_is_dropped_and_the_real_face_kept(tmp_path: Path) -> None:
    clips = support()
    photo = clips.still_photo(CLIPS / "styletalk_Obama_clip1.mp4")
    clip = clips.paste_still_face(VIDEO, photo, tmp_path / "poster.mp4", seconds=8.0)
    summary = mine([clip], tmp_path / "q", MineOptions(fps=5, rules=MineRules(min_confidence=1.01, dedupe_bits=-1)))
    with Queue(tmp_path / "q") as queue:
        boxes = [json.loads(r[0]) for r in queue.query("SELECT box FROM faces")]
    width = 596
    pasted = [b for b in boxes if b[0] > width - photo.shape[1] - 10]
    assert summary.faces_seen >= 70  # both faces tracked through the 8 s
    assert pasted == [] and summary.dropped["static"] >= 30
    assert len(boxes) >= 30  # the real (talking) face kept in nearly every sampled frame


def test_stats_count_the_queue(tmp_path: Path, mined) -> None:
    q, summary = mined
    with Queue(q) as queue:
        stats = queue_stats(queue)
        paths = write_summary(queue, tmp_path / "stats")
    assert stats["faces"] == summary.kept and stats["by_reason"]["low_confidence"] == summary.kept
    assert sum(stats["by_class"].values()) == summary.kept
    assert stats["dropped"] == dict(summary.dropped) and stats["candidates"] == summary.candidates
    assert {Path(s["source"]).name for s in stats["sources"]} == {SHORT.name, SINGLE.name}
    assert json.loads(paths["json"].read_text()) == stats
    page = paths["html"].read_text()
    assert page.count('title="') == sum(min(n, 6) for n in stats["by_reason"].values())  # example crops per reason
    assert page.count("data:image/png;base64,") == 1 + page.count('title="')  # plus the bar charts
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_two_models_and_aus_give_disagreement_hard_case_and_speech_reasons(tmp_path: Path) -> None:
    """With ``--model ferkit --model fer --aus`` each kept face stores both models' outputs, AUs and speaking, and
    its reasons say exactly where the models differ and where hard-case rules fired."""
    s = mine([SHORT, SINGLE], tmp_path / "q", MineOptions(fps=3, models=("ferkit", "fer"), aus=True))
    with Queue(tmp_path / "q") as queue:
        rows = [queue.face(i) for i in _ids(tmp_path / "q")]
    assert rows and s.kept == len(rows)
    for r in rows:
        assert set(r["models"]) == {"ferkit", "fer"} and r["aus"] and "AU12" in r["aus"]
        differ = r["models"]["ferkit"]["emotion"] != r["models"]["fer"]["emotion"]
        assert ("disagreement" in r["reasons"]) == differ
        assert ("hard_case" in r["reasons"]) == bool(r["hard_case_rules"])
        assert ("speech_action" in r["reasons"]) == bool(r["speech_action"])
    assert any("disagreement" in r["reasons"] for r in rows)
    assert any(r["speaking"] is not None for r in rows)


def test_bad_queues_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        mine([SINGLE], tmp_path / "file")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "queue.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="corrupt queue database"):
        mine([SINGLE], corrupt)
    assert (corrupt / "queue.sqlite").read_bytes() == b"not a database at all" * 100
    newer = tmp_path / "newer"
    Queue(newer, create=True).close()
    with sqlite3.connect(newer / "queue.sqlite") as c:
        c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(InputError, match="newer than this ferkit"):
        Queue(newer)
    with pytest.raises(InputError, match="not a mining queue"):
        Queue(tmp_path / "missing")


@pytest.mark.slow
def test_killed_mine_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Exact resume: SIGKILL a `ferkit mine` once it has stored faces, rerun it, and compare with one clean run."""
    args = [sys.executable, "-m", "ferkit.cli", "mine", str(SHORT), str(SINGLE), "--fps", "3", "--min-confidence"]
    args += ["1.01", "--checkpoint-every", "0", "--queue"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([*args, str(tmp_path / "clean")], check=True, capture_output=True, env=env, timeout=600)
    proc = subprocess.Popen([*args, str(tmp_path / "killed")], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(_ids(tmp_path / "killed")) >= 2:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    killed_early = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_early, "mine finished before it could be killed"
    partial = _ids(tmp_path / "killed")
    assert 2 <= len(partial) < len(_ids(tmp_path / "clean"))
    rerun = subprocess.run([*args, str(tmp_path / "killed")], check=True, capture_output=True, env=env, timeout=600)
    assert b"1 continued" in rerun.stderr  # from the checkpoint the killed run left, not from the start
    assert _ids(tmp_path / "killed") == _ids(tmp_path / "clean")
    assert sorted(p.stem for p in (tmp_path / "killed" / "crops").glob("*.png")) == _ids(tmp_path / "clean")
