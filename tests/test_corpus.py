"""``ferkit corpus``: sparse every-N-th decoding, manifests, runs (skip, refuse, relabel, failures, kill -9 and
resume), report, compare statistics and DuckDB queries, on real clips from ../shared/data/clips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DATA

from ferkit.corpus.jobs import RunSpec
from ferkit.corpus.manifest import load_manifest
from ferkit.corpus.run import corpus_run
from ferkit.errors import InputError

CLIPS = DATA / "clips"
SHORT = {  # title -> (file, group): three short clips with faces and one without
    "single": ("pyfeat_single_face.mp4", "pexels"),
    "noface": ("pyfeat_no_face.mp4", "pexels"),
    "feifei3": ("styletalk_feifeili_clip3.mp4", "feifeili"),
    "feifei1": ("styletalk_feifeili_clip1.mp4", "feifeili"),
}
EVERY = 30


def write_manifest(path: Path, rows: dict[str, tuple[str, str]] = SHORT, extra: str = "") -> Path:
    lines = ["path,title,speaker"] + [f"{f},{t},{g}" for t, (f, g) in rows.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def parts_frame(out: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(f) for f in sorted((out / "records").glob("*.parquet"))]
    return (
        pd.concat(frames, ignore_index=True).sort_values(["video_id", "frame_index", "face_id"]).reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four short clips, every 30th frame, with the bundled model and the fer backend (one run, two models)."""
    tmp = tmp_path_factory.mktemp("corpus")
    manifest = write_manifest(tmp / "m.csv")
    summary = corpus_run(manifest, tmp / "run", RunSpec(("ferkit", "fer"), every=EVERY), workers=2, root=CLIPS)
    assert sorted(summary.done) == sorted(SHORT) and not summary.failed
    return tmp / "run"


# --- sampling -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", ["pyfeat_no_face.mp4", "stage_hamilton.mp4", "pyfeat_face_noface.mov"])
@pytest.mark.parametrize("every", [7, 100])
def test_every_nth_frame_is_the_same_frame_in_every_skip_mode(clip: str, every: int) -> None:
    from ferkit.media.video import SKIP_MODES, iter_every, iter_video

    full = list(iter_video(CLIPS / clip, fps=None))
    expected = [(f.index, f.timestamp, f.gray.tobytes()) for f in full[::every]]
    for mode in SKIP_MODES:
        got = [(f.index, f.timestamp, f.gray.tobytes()) for f in iter_every(CLIPS / clip, every, mode)]
        assert got == expected, mode
        assert np.array_equal(next(iter_every(CLIPS / clip, every, mode)).rgb(), full[0].rgb())


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "10"])
def test_every_must_be_a_whole_number(bad: object) -> None:
    from ferkit.analysis.pipeline import AnalyzeOptions

    with pytest.raises(InputError, match="--every"):
        AnalyzeOptions(every=bad)  # type: ignore[arg-type]


# --- manifests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("m.csv", "", "no videos"),
        ("m.csv", "path,genre\na.mp4,x\n", "lacks the column"),
        ("m.csv", "path,title\na.mp4,A\nb.mp4,A\n", "same title"),
        ("m.csv", "path,title\na.mp4,A\na.mp4,B\n", "same file"),
        ("m.csv", "path,title,emotion\na.mp4,A,x\n", "reserved"),
        ("m.csv", "path,title,my col\na.mp4,A,x\n", "reserved or not a plain name"),
        ("m.csv", "path,title\na.mp4,A,extra\n", "more fields"),
        ("m.csv", "path,title\n,A\n", "empty path"),
        ("m.yaml", "videos: 3\n", "list of mappings"),
        ("m.yaml", "- {path: a.mp4, title: A, tags: [1, 2]}\n", "scalars"),
        ("m.yaml", "- {path: a.mp4\n", "not valid YAML"),
        ("m.json", "[]", ".csv, .tsv, .yaml"),
    ],
)
def test_bad_manifests_are_one_line_errors(tmp_path: Path, name: str, text: str, match: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(InputError, match=match):
        load_manifest(tmp_path / name)


def test_manifest_yaml_resolves_paths_against_its_folder_and_types_columns(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("videos:\n  - {path: v.mp4, title: 'Le Film: 2', year: 1999, genre: comedy}\n")
    (m,) = load_manifest(tmp_path / "m.yaml").videos
    assert m.file == tmp_path / "v.mp4" and m.video_id == "Le_Film_2" and m.columns == {"year": 1999, "genre": "comedy"}


# --- runs -----------------------------------------------------------------------------------------------------


def test_every_video_gets_a_part_with_the_manifest_joined_in(run_dir: Path) -> None:
    df = parts_frame(run_dir)
    assert set(df["video_id"]) == set(SHORT)
    assert (df["frame_index"] % EVERY == 0).all()
    assert not df.duplicated(["video_id", "frame_index", "face_id"]).any()
    for title, (_, group) in SHORT.items():
        rows = df[df["video_id"] == title]
        assert (rows["speaker"] == group).all() and (rows["path"] == SHORT[title][0]).all()
        assert rows["frame_index"].min() == 0 and rows["time_pct"].between(0, 100).all()
    noface = df[df["video_id"] == "noface"]
    assert noface["face_id"].isna().sum() >= 3  # no-face rows: the video is done, with its frames
    faces = df[df["face_id"].notna()]
    probs = faces[[c for c in df.columns if c.startswith("p_")]].sum(axis=1)
    assert np.allclose(probs, 1, atol=1e-3)
    models = json.loads(faces["models"].iloc[0])
    assert set(models) == {"ferkit", "fer"} and faces["model"].eq("ferkit").all()
    log = [json.loads(line) for line in (run_dir / "run_log.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log].count("done") == len(SHORT) and log[-1]["event"] == "end"


def test_a_rerun_is_a_no_op_and_other_settings_are_refused(run_dir: Path, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv")
    before = {f: f.stat().st_mtime_ns for f in (run_dir / "records").iterdir()}
    again = corpus_run(manifest, run_dir, RunSpec(("ferkit", "fer"), every=EVERY), root=CLIPS)
    assert sorted(again.skipped) == sorted(SHORT) and not again.done
    assert {f: f.stat().st_mtime_ns for f in (run_dir / "records").iterdir()} == before
    for spec in (RunSpec(("ferkit", "fer"), every=10), RunSpec(("ferkit",), every=EVERY)):
        with pytest.raises(InputError, match="never mixed"):
            corpus_run(manifest, run_dir, spec, root=CLIPS)


def test_a_changed_manifest_row_relabels_the_part_without_analysis(tmp_path: Path) -> None:
    rows = {"single": SHORT["single"]}
    spec = RunSpec(("ferkit",), every=EVERY)
    corpus_run(write_manifest(tmp_path / "m.csv", rows), tmp_path / "run", spec, root=CLIPS)
    first = parts_frame(tmp_path / "run")
    again = corpus_run(
        write_manifest(tmp_path / "m.csv", {"single": (rows["single"][0], "renamed")}),
        tmp_path / "run",
        spec,
        root=CLIPS,
    )
    assert again.skipped == ["single"] and not again.done
    second = parts_frame(tmp_path / "run")
    assert (second["speaker"] == "renamed").all()
    pd.testing.assert_frame_equal(first.drop(columns="speaker"), second.drop(columns="speaker"))


def ferkit(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "ferkit.cli", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_failing_videos_are_reported_and_never_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(5000))
    rows = {"single": (str(CLIPS / SHORT["single"][0]), "x"), "junk": ("garbage.mp4", "y"), "gone": ("gone.mp4", "y")}
    res = ferkit(
        "corpus", "run", write_manifest(tmp_path / "m.csv", rows), "--out", "run", "--every", EVERY, cwd=tmp_path
    )
    assert res.returncode == 1, res.stderr
    assert "1 analysed, 0 already done, 2 failed" in res.stderr and "Traceback" not in res.stderr
    assert "gone.mp4: no such video file" in res.stderr and "junk" in res.stderr
    assert [p.name for p in (tmp_path / "run" / "records").iterdir()] == ["single.parquet"]


def test_ray_without_ray_installed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'ferkit\[ray\]'"):
        corpus_run(write_manifest(tmp_path / "m.csv"), tmp_path / "run", RunSpec(), engine="ray", root=CLIPS)
    assert not (tmp_path / "run").exists()


def _work_rows(out: Path) -> int:
    return sum(len(f.read_bytes().splitlines()) for f in (out / ".work").glob("*.jsonl"))


def test_kill_9_mid_video_then_rerun_gives_the_rows_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGKILL the whole run (main process and workers) once the long clip's work file holds 120 rows; the rerun
    continues it from its checkpoint: the same Parquet rows as a run never stopped, nothing duplicated."""
    rows = {"pose2": ("edtalk_pose_source2.mp4", "a"), "single": ("pyfeat_single_face.mp4", "b")}
    manifest = write_manifest(tmp_path / "m.csv", rows)
    args = ["corpus", "run", manifest, "--every", "3", "--root", CLIPS, "--workers", "1", "--checkpoint-every", "0"]
    assert ferkit(*args, "--out", "full", cwd=tmp_path).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "ferkit.cli", *map(str, args), "--out", "cut"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and _work_rows(tmp_path / "cut") < 120:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "cut" / "records" / "pose2.parquet").exists()
    res = ferkit(*args, "--out", "cut", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    log = [json.loads(line) for line in (tmp_path / "cut" / "run_log.jsonl").read_text().splitlines()]
    assert any(e.get("video_id") == "pose2" and e["event"] == "done" and e["resumed"] for e in log)
    cut, full = parts_frame(tmp_path / "cut"), parts_frame(tmp_path / "full")
    assert not cut.duplicated(["video_id", "frame_index", "face_id"]).any()
    pd.testing.assert_frame_equal(cut, full)
    assert not list((tmp_path / "cut" / ".work").glob("*.jsonl"))


# --- report, compare, query -----------------------------------------------------------------------------------


def test_report_writes_shares_timelines_change_points_and_a_self_contained_html(run_dir: Path, tmp_path: Path) -> None:
    from ferkit.corpus.report import corpus_report

    r = corpus_report(run_dir, tmp_path / "rep", by="speaker")
    names = {p.name for p in r.files}
    assert {"report.md", "report.html", "shares.png", "group_timelines.png", "videos.csv", "timelines.csv"} <= names
    v = r.videos.set_index("video_id")
    share = [c for c in v.columns if c.startswith("share_")]
    df = parts_frame(run_dir)
    for vid in ("single", "feifei3", "feifei1"):
        faces = df[(df["video_id"] == vid) & df["face_id"].notna()]
        assert v.at[vid, "face_frames"] == len(faces)
        assert np.isclose(v.loc[vid, share].sum(), 1)
        assert np.isclose(v.at[vid, f"share_{faces['emotion'].mode()[0]}"], v.loc[vid, share].max())
        assert 0 <= v.at[vid, "entropy"] <= 1 and 0 <= v.at[vid, "flatness"] <= 1
        minutes = faces["duration_s"].iloc[0] / 60
        assert np.isclose(v.at[vid, "faces_per_minute"], faces["face_id"].nunique() / minutes)
    tl = r.timelines[r.timelines["video_id"] == "feifei1"]
    assert len(tl) == 100 and tl["pct"].between(0, 100).all()
    assert set(r.group_timelines["group"]) == {"pexels", "feifeili"}
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<script src" not in html and "Plotly.newPlot" in html and len(html) > 1_000_000  # plotly.js inlined
    assert "| feifeili |" in (tmp_path / "rep" / "report.md").read_text().replace("  ", " ")
    with pytest.raises(InputError, match="not a manifest column"):
        corpus_report(run_dir, tmp_path / "rep", by="genre")


def test_change_points_follow_the_dominant_emotion() -> None:
    from ferkit.corpus.metrics import change_points

    pct = np.arange(100) + 0.5
    happy = np.where(pct < 40, 0.8, 0.1)
    tl = pd.DataFrame({"video_id": "v", "pct": pct, "happy": happy, "sad": 1 - happy})
    (cp,) = change_points(tl, ["happy", "sad"]).to_dict("records")
    assert cp["from"] == "happy" and cp["to"] == "sad" and cp["pct"] == pytest.approx(40.5)


def test_paired_statistics_match_scipy_and_refuse_degenerate_input() -> None:
    from scipy import stats

    from ferkit.corpus.stats import compare_shares, holm, paired_test, rank_biserial

    rng = np.random.default_rng(0)
    a = rng.uniform(0, 0.5, 12)
    b = a + rng.normal(0.1, 0.05, 12)
    t = paired_test("happy", a, b)
    assert t.p_t == pytest.approx(stats.ttest_rel(b, a).pvalue) and t.p_w == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert t.d_z == pytest.approx((b - a).mean() / (b - a).std(ddof=1)) and t.ci_low < t.mean_diff < t.ci_high
    assert rank_biserial(np.array([1.0, 2, 3, -4, 5, 0])) == pytest.approx((11 - 4) / 15)  # zeros dropped
    assert holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06], nan_ok=True)
    constant = paired_test("sad", a, a + 0.1)
    assert constant.p_t is None and "constant" in constant.note
    assert "at least 3" in paired_test("sad", a[:2], b[:2]).note
    tests = compare_shares(np.c_[a, 1 - a], np.c_[b, 1 - b], ["happy", "sad"])
    assert all(x.p_t_holm is not None and x.p_t_holm >= x.p_t for x in tests)


def test_compare_one_run_with_two_models(run_dir: Path, tmp_path: Path) -> None:
    from ferkit.corpus.compare import compare_runs

    cmp = compare_runs(run_dir, out=tmp_path / "cmp")
    assert (cmp.name_a, cmp.name_b) == ("ferkit", "fer")
    allv = cmp.table[cmp.table["scope"] == "all"]
    assert len(allv) == 7 and (allv["n"] == 3).all()  # the no-face clip has no face with YuNet: 3 videos
    df = parts_frame(run_dir)
    fer = [json.loads(m)["fer"]["emotion"] for m in df.loc[df["video_id"] == "feifei1", "models"].dropna()]
    row = cmp.shares.set_index("video_id").loc["feifei1"]
    assert row["fer_neutral"] == pytest.approx(fer.count("neutral") / len(fer))
    per_group = cmp.table[cmp.table["scope"] == "speaker=pexels"]
    assert per_group["note"].str.contains("at least 3").all()  # 2 videos in that group: a note, not NaN numbers
    assert {"compare.md", "compare.csv", "compare.png"} <= {p.name for p in cmp.files}


def test_compare_needs_three_common_videos(tmp_path: Path) -> None:
    from ferkit.corpus.compare import compare_runs

    rows = {k: SHORT[k] for k in ("single", "feifei3")}
    for name, model in (("a", "ferkit"), ("b", "fer")):
        corpus_run(
            write_manifest(tmp_path / "m.csv", rows), tmp_path / name, RunSpec((model,), every=EVERY), root=CLIPS
        )
    with pytest.raises(InputError, match="only 2 video"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def test_query_runs_sql_over_the_parts_and_reports_errors_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from ferkit.corpus.query import query

    got = query(run_dir, "SELECT video_id, count(*) AS n, count(face_id) AS faces FROM records GROUP BY 1 ORDER BY 1")
    df = parts_frame(run_dir)
    assert got.set_index("video_id")["n"].to_dict() == df.groupby("video_id").size().to_dict()
    with pytest.raises(InputError, match="query failed"):
        query(run_dir, "SELECT nope FROM records")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir / "records", broken / "records")
    (broken / "records" / "single.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="query failed"):
        query(broken, "SELECT count(*) FROM records")
    with pytest.raises(InputError, match="no corpus records"):
        query(tmp_path, "SELECT 1")


def test_ray_engine_writes_the_parts_of_the_local_engine(tmp_path: Path) -> None:
    """A local Ray with two workers, one task per video: byte-identical Parquet parts."""
    pytest.importorskip("ray")
    rows = {k: SHORT[k] for k in ("single", "noface", "feifei3")}
    manifest = write_manifest(tmp_path / "m.csv", rows)
    for engine in ("local", "ray"):
        s = corpus_run(manifest, tmp_path / engine, RunSpec(every=EVERY), engine=engine, workers=2, root=CLIPS)
        assert sorted(s.done) == sorted(rows) and not s.failed
    for part in (tmp_path / "local" / "records").iterdir():
        assert part.read_bytes() == (tmp_path / "ray" / "records" / part.name).read_bytes(), part.name
    log = [json.loads(line) for line in (tmp_path / "ray" / "run_log.jsonl").read_text().splitlines()]
    assert {e["event"] for e in log} == {"start", "done", "end"} and log[0]["engine"] == "ray"


def test_cli_compare_and_query_of_a_two_model_run(run_dir: Path, tmp_path: Path) -> None:
    res = ferkit("corpus", "compare", run_dir, "--out", tmp_path / "cmp", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "fer vs ferkit over 3 videos" in res.stderr and "neutral:" in res.stderr
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("# fer vs ferkit")
    res = ferkit(
        "corpus",
        "query",
        run_dir,
        "SELECT video_id, count(*) AS n FROM records GROUP BY 1 ORDER BY 1",
        "--csv",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    counts = parts_frame(run_dir).groupby("video_id").size()
    assert res.stdout.splitlines() == ["video_id,n", *(f"{v},{n}" for v, n in sorted(counts.items()))]


def test_fps_sampling_runs_too(tmp_path: Path) -> None:
    rows = {"single": SHORT["single"]}
    s = corpus_run(write_manifest(tmp_path / "m.csv", rows), tmp_path / "run", RunSpec(every=None, fps=2.0), root=CLIPS)
    assert s.done == ["single"]
    ts = parts_frame(tmp_path / "run")["timestamp"].to_numpy()
    assert np.allclose(ts, np.arange(len(ts)) * 0.5, atol=0.04) and len(ts) == 5  # a 2.4 s clip at 2 fps
    meta = json.loads((tmp_path / "run" / "corpus.json").read_text())
    assert meta["sampling"] == "2 fps" and meta["settings"]["fps"] == 2.0 and meta["settings"]["every"] is None


def test_retry_policy_retries_transient_failures_only(tmp_path: Path) -> None:
    from ferkit.corpus.engines import Callbacks, _settle
    from ferkit.corpus.jobs import VideoJob, VideoResult

    (video,) = load_manifest(write_manifest(tmp_path / "m.csv", {"single": SHORT["single"]}), CLIPS).videos
    job = VideoJob(video, "k", "h", tmp_path / "w.jsonl", tmp_path / "p.parquet", RunSpec())
    seen: list[tuple[int, bool]] = []
    cb = Callbacks(lambda v, s: None, lambda r, attempt, final: seen.append((attempt, final)))
    attempts = {"single": 0}
    died = VideoResult("single", ok=False, error="worker died", retryable=True)
    assert _settle(died, job, attempts, 2, cb) and _settle(died, job, attempts, 2, cb)
    assert not _settle(died, job, attempts, 2, cb)  # the third attempt was the last
    assert seen == [(1, False), (2, False), (3, True)]
    attempts["single"] = 0
    bad = VideoResult("single", ok=False, error="corrupt video", retryable=False)
    assert not _settle(bad, job, attempts, 2, cb) and seen[-1] == (1, True)
