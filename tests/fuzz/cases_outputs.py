"""Where results go: unwritable or full output locations (the whole computation must not be lost at the write), an
output that is one of the inputs, ``--resume`` onto files ferkit did not write or with another model, the same input
under two path spellings, two processes writing one file, and resumed runs that differ from uninterrupted ones."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import CLI_MODULE, package_src
from .inputs import (
    copy_blank,
    copy_clip,
    copy_crop,
    face_records,
    labelled_folder,
    long_clip,
    voice_rows,
    write_jsonl,
)
from .registry import FuzzCase, Outcome, Runner, expect_records, read_jsonl, register

FULL = "/dev/full"  # every write fails with ENOSPC: a full disk, even for root


def _crop(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")


def _ds(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 2, ["happy", "sad"])


def _channels(tmp: Path) -> None:
    write_jsonl(tmp / "face.jsonl", face_records(6))
    write_jsonl(tmp / "voice.jsonl", voice_rows(6))


def _file_at(rel: str):
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text("a plain file where a folder is needed\n")

    return setup


def _both(*setups):
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)

    return setup


def _out(cid: str, command: str, args: list[str], setup, expect: str = "usage_error", **kw: object) -> None:
    register(FuzzCase(f"{command}/output-{cid}", command, "outputs", args, setup=setup, expect=expect, **kw))  # type: ignore[arg-type]


# --- unwritable and full locations ---------------------------------------------------------------------------------

ANALYZE = ["analyze", "x.jpg", "--crops", "--no-plots"]
_out("disk-full", "analyze", [*ANALYZE, "-o", FULL], _crop, note="ENOSPC on the first record")
_out("disk-full-csv", "analyze", [*ANALYZE, "--format", "csv", "-o", FULL], _crop)
_out("parent-is-file", "analyze", [*ANALYZE, "-o", "f/out.jsonl"], _file_at("f"))
_out("is-directory", "analyze", [*ANALYZE, "-o", "d"], lambda t: (_crop(t), (t / "d").mkdir()))
_out("empty-path", "analyze", [*ANALYZE, "-o", ""], _crop)
_out("fifo", "analyze", [*ANALYZE, "-o", "pipe.jsonl"], lambda t: (_crop(t), os.mkfifo(t / "pipe.jsonl")),
     subprocess=True, timeout=6, note="opening a FIFO for writing blocks until a reader comes")  # fmt: skip
_out("results-dir-is-file", "analyze", ANALYZE, _both(_crop, _file_at("ferkit-results")),
     note="the default ./ferkit-results is a file")  # fmt: skip
_out("plot-path-is-directory", "analyze", ["analyze", "x.jpg", "--crops", "-o", "out.jsonl"],
     lambda t: (_crop(t), (t / "out.distribution.png").mkdir()), expect="either",
     check=expect_records("out.jsonl", n=1))  # fmt: skip

EVAL = ["evaluate", "ds", "--crops"]
_out("report-disk-full", "evaluate", [*EVAL, "--report", FULL], _ds, note="written after the whole evaluation")
_out("report-parent-is-file", "evaluate", [*EVAL, "--report", "f/r.json"], _both(_ds, _file_at("f")))
_out("report-is-directory", "evaluate", [*EVAL, "--report", "d"], lambda t: (_ds(t), (t / "d").mkdir()))
_out("out-dir-is-file", "evaluate", [*EVAL, "--out-dir", "f"], _both(_ds, _file_at("f")))
_out("out-dir-under-file", "evaluate", [*EVAL, "--out-dir", "f/o"], _both(_ds, _file_at("f")))
_out("out-dir-report-md-is-dir", "evaluate", [*EVAL, "--out-dir", "o"],
     lambda t: (_ds(t), (t / "o" / "report.md").mkdir(parents=True)))  # fmt: skip

CAL = ["calibrate", "ds", "--crops", "--method", "grid", "--trials", "5"]
_out("disk-full", "calibrate", [*CAL, "-o", FULL], _ds, note="written after logits and the bias search")
_out("parent-is-file", "calibrate", [*CAL, "-o", "f/cal.json"], _both(_ds, _file_at("f")))
_out("is-directory", "calibrate", [*CAL, "-o", "d"], lambda t: (_ds(t), (t / "d").mkdir()))
_out("cache-dir-is-file", "calibrate", [*CAL, "-o", "cal.json"], _both(_ds, _file_at("ferkit-results/cache")),
     note="the logits cache under ./ferkit-results/cache cannot be written")  # fmt: skip

FUSE = ["fuse", "face.jsonl", "voice.jsonl"]
_out("disk-full", "fuse", [*FUSE, "--no-plot", "-o", FULL], _channels)
_out("parent-is-file", "fuse", [*FUSE, "--no-plot", "-o", "f/fused.jsonl"], _both(_channels, _file_at("f")))
_out("is-directory", "fuse", [*FUSE, "--no-plot", "-o", "d"], lambda t: (_channels(t), (t / "d").mkdir()))
_out("plot-path-is-directory", "fuse", [*FUSE, "-o", "fused.jsonl"],
     lambda t: (_channels(t), (t / "fused.png").mkdir()),
     note="the plot fails after the table was written")  # fmt: skip

_out("json-disk-full", "dataset", ["dataset", "ds", "--json", FULL], _ds)
_out("json-parent-is-file", "dataset", ["dataset", "ds", "--json", "f/r.json"], _both(_ds, _file_at("f")))
_out("out-is-file", "demo", ["demo", "--out", "f"], _file_at("f"))
_out("out-under-file", "demo", ["demo", "--out", "f/demo"], _file_at("f"))
_out("out-is-checkpoint-file", "export", ["export", "run", "--out", "run/best.pt"],
     lambda t: ((t / "run").mkdir(), (t / "run" / "best.pt").write_bytes(b"x")))  # fmt: skip

# --- the output is one of the inputs --------------------------------------------------------------------------------

_out("equals-input-image", "analyze", ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "x.jpg"], _crop,
     wrong="lost_or_duplicated", note="the input photo is overwritten with JSON")  # fmt: skip
_out("equals-input-video", "analyze", ["analyze", "v.mp4", "--no-plots", "-o", "v.mp4"],
     lambda t: copy_blank(t / "v.mp4"), wrong="lost_or_duplicated")  # fmt: skip
_out("inside-input-folder", "analyze", ["analyze", "in", "--crops", "--no-plots", "-o", "in/a.jpg"],
     lambda t: copy_crop(t / "in" / "a.jpg"), wrong="lost_or_duplicated")  # fmt: skip
_out("symlink-to-input", "analyze", ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl"],
     lambda t: (_crop(t), (t / "out.jsonl").symlink_to("x.jpg")), wrong="lost_or_duplicated",
     note="the output name is a link to the input")  # fmt: skip
_out("equals-input-channel", "fuse", [*FUSE, "--no-plot", "-o", "face.jsonl"], _channels, wrong="lost_or_duplicated")
_out("report-equals-dataset-image", "evaluate", [*EVAL, "--report", "ds/happy/happy_0.jpg"], _ds,
     wrong="lost_or_duplicated")  # fmt: skip
_out("out-dir-inside-class-folder", "evaluate", [*EVAL, "--out-dir", "ds/happy"], _ds, wrong="lost_or_duplicated",
     note="confusion and reliability PNGs land among the 'happy' images and are scored next time")  # fmt: skip
_out("equals-dataset-image", "calibrate", [*CAL, "-o", "ds/sad/sad_0.jpg"], _ds, wrong="lost_or_duplicated")
_out("json-equals-input-csv", "dataset", ["dataset", "fer.csv", "--json", "fer.csv"],
     lambda t: (t / "fer.csv").write_text("emotion,pixels,Usage\n3," + " ".join(["9"] * 2304) + ",Training\n"),
     wrong="lost_or_duplicated")  # fmt: skip

# --- --resume onto files ferkit did not write, or wrote with another model --------------------------------------------


def _resume_onto(name: str, content: bytes):
    def setup(tmp: Path) -> None:
        _crop(tmp)
        (tmp / name).write_bytes(content)

    return setup


for cid, name, fmt, content in [
    ("other-jsonl", "notes.jsonl", "jsonl", b'{"hello": "world"}\n{"a": 1}\n'),
    ("plain-text", "notes.jsonl", "jsonl", b"meeting notes\nbuy milk"),
    ("spreadsheet-csv", "sheet.csv", "csv", b"name,score\nann,3\nbob,4"),
    ("binary", "blob.jsonl", "jsonl", bytes(range(256)) * 4),
    ("not-parquet", "t.parquet", "parquet", b"definitely not parquet"),
    ("records-wrong-types", "r.jsonl", "jsonl", b'{"source": 5, "frame_index": "x", "face_id": []}\n'),
]:
    register(
        FuzzCase(
            f"analyze/resume-onto-{cid}", "analyze", "outputs",
            ["analyze", "x.jpg", "--crops", "--no-plots", "--resume", "--format", fmt, "-o", name],
            setup=_resume_onto(name, content), wrong="lost_or_duplicated",
            note="--resume truncates or appends to a file that is not ferkit output",
        )
    )  # fmt: skip
register(
    FuzzCase(
        "analyze/resume-onto-fifo", "analyze", "outputs",
        ["analyze", "x.jpg", "--crops", "--no-plots", "--resume", "-o", "pipe.jsonl"],
        setup=lambda t: (_crop(t), os.mkfifo(t / "pipe.jsonl")), subprocess=True, timeout=6,
    )
)  # fmt: skip


def _consistent_csv(o: Outcome) -> None:
    with open(o.tmp / "out.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body), "rows with another column count than the header"
    col = header.index("model")
    models = {r[col] for r in body}
    assert len(models) == 1, f"records of several models in one file: {models}"


def _consistent_jsonl(o: Outcome) -> None:
    recs = read_jsonl(o.tmp / "out.jsonl")
    models = {r["model"] for r in recs}
    assert len(models) == 1, f"records of several models in one file: {models}"
    classes = {tuple(sorted(r["probabilities"])) for r in recs if r["probabilities"]}
    assert len(classes) == 1, f"records with different class sets: {classes}"


def _two_runs(first: list[str], second: list[str]):
    """Custom driver: run ``first`` (must succeed), then ``second``; the outcome is the second's."""

    def run(tmp: Path, invoke: Runner) -> Outcome:
        a = invoke(first)
        if a.code != 0:
            return a
        return invoke(second)

    return run


def _three_crops(tmp: Path) -> None:
    copy_crop(tmp / "a.jpg", "happy", 0)
    copy_crop(tmp / "b.jpg", "sad", 0)
    copy_crop(tmp / "c.jpg", "angry", 0)


for fmt, check in [("csv", _consistent_csv), ("jsonl", _consistent_jsonl)]:
    register(
        FuzzCase(
            f"analyze/resume-with-other-model-{fmt}",
            "analyze",
            "outputs",
            [],
            setup=_three_crops,
            expect="either",
            run=_two_runs(
                ["analyze", "a.jpg", "b.jpg", "--crops", "--no-plots", "--format", fmt, "-o", f"out.{fmt}"],
                [
                    "analyze",
                    "a.jpg",
                    "b.jpg",
                    "c.jpg",
                    "--crops",
                    "--no-plots",
                    "--format",
                    fmt,
                    "-o",
                    f"out.{fmt}",
                    "--resume",
                    "--model",
                    "ferkit-gate",
                ],
            ),
            check=check,
            wrong="lost_or_duplicated",
            note="the resumed part uses another model: CSV columns misaligned / mixed records",
        )
    )


def _unique_frames(n: int):
    def check(o: Outcome) -> None:
        recs = read_jsonl(o.tmp / "out.jsonl")
        keys = [(os.path.realpath(o.tmp / r["source"]), r["frame_index"], r["face_id"]) for r in recs]
        dup = len(keys) - len(set(keys))
        assert dup == 0, f"{dup} records duplicated (the same file under two names)"
        assert len(recs) == n, f"{len(recs)} records, expected {n}"

    return check


def _clip_v(tmp: Path) -> None:
    copy_blank(tmp / "v.mp4")
    (tmp / "sub").mkdir()


for cid, second in [("dot-dot", "sub/../v.mp4"), ("absolute", None), ("symlink", "link.mp4")]:

    def run(tmp: Path, invoke: Runner, second=second) -> Outcome:
        if second == "link.mp4":
            (tmp / "link.mp4").symlink_to("v.mp4")
        other = str(tmp / "v.mp4") if second is None else second
        a = invoke(["analyze", "v.mp4", "--fps", "all", "--no-plots", "-o", "out.jsonl"])
        if a.code != 0:
            return a
        return invoke(["analyze", other, "--fps", "all", "--no-plots", "-o", "out.jsonl", "--resume"])

    register(
        FuzzCase(
            f"analyze/resume-same-video-{cid}", "analyze", "outputs", [], setup=_clip_v, expect="either", run=run,
            check=_unique_frames(10), wrong="lost_or_duplicated",
            note="resume points are keyed by the path as typed: another spelling analyses the video again",
        )
    )  # fmt: skip


def _resume_matches_full(o: Outcome) -> None:
    full = {(r["frame_index"], r["face_id"]): r for r in read_jsonl(o.tmp / "full.jsonl")}
    resumed = {(r["frame_index"], r["face_id"]): r for r in read_jsonl(o.tmp / "out.jsonl")}
    assert set(full) == set(resumed), f"frames differ: {sorted(set(full) ^ set(resumed))[:6]}"
    bad = []
    for k, a in full.items():
        b = resumed[k]
        if a["smoothed_emotion"] != b["smoothed_emotion"] or a["emotion"] != b["emotion"]:
            was, now = f"{a['smoothed_emotion']}/{a['emotion']}", f"{b['smoothed_emotion']}/{b['emotion']}"
            bad.append(f"frame {k[0]}: {was} vs {now}")
            continue
        sp = max((abs(a["smoothed_probabilities"][c] - b["smoothed_probabilities"][c])
                  for c in a["smoothed_probabilities"] or {}), default=0)  # fmt: skip
        box = max((abs(x - y) for x, y in zip(a["box"] or [], b["box"] or [], strict=True)), default=0)
        if sp > 1e-3 or box > 1.0:
            bad.append(f"frame {k[0]}: smoothed probabilities differ by {sp:.3f}, box by {box:.1f} px")
    assert not bad, f"{len(bad)} resumed records differ from the uninterrupted run, e.g. {bad[:3]}"


def _interrupted(tmp: Path, invoke: Runner) -> Outcome:
    a = invoke(["analyze", "v.mp4", "--fps", "all", "--no-plots", "-o", "full.jsonl"])
    if a.code != 0:
        return a
    lines = (tmp / "full.jsonl").read_text().splitlines(keepends=True)
    (tmp / "out.jsonl").write_text("".join(lines[:13]) + lines[13][:40])  # killed mid-write after 13 frames
    return invoke(["analyze", "v.mp4", "--fps", "all", "--no-plots", "-o", "out.jsonl", "--resume"])


register(
    FuzzCase(
        "analyze/resume-differs-from-uninterrupted", "analyze", "outputs", [], setup=lambda t: copy_clip(t / "v.mp4"),
        expect="ok", run=_interrupted, check=_resume_matches_full, wrong="lost_or_duplicated", timeout=120,
        note="on resume, tracking and smoothing restart mid-stream",
    )
)  # fmt: skip


# --- two processes writing one output --------------------------------------------------------------------------------


def _race(tmp: Path, invoke: Runner) -> Outcome:
    """``ferkit analyze v.mp4 -o out.jsonl`` and ``ferkit analyze w.mp4 -o out.jsonl`` at once (not through
    ``invoke``: they must overlap). Acceptable: one refuses (exit 2, one line) and the file holds the other's
    records."""
    import time

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_src()), *filter(None, [env.get("PYTHONPATH")])])
    argvs = [
        [sys.executable, "-m", CLI_MODULE, "analyze", video, "--fps", "all", "--no-plots", "-o", "out.jsonl"]
        for video in ("v.mp4", "w.mp4")
    ]
    start = time.monotonic()
    procs = [subprocess.Popen(argv, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for argv in argvs]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, err = p.communicate()
            return Outcome(None, out.decode(), err.decode(), time.monotonic() - start, tmp, timed_out=True)
        outs.append((p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")))
    seconds = time.monotonic() - start
    for code, out, err in outs:  # anything but a clean finish or a clean refusal is the outcome
        lines = [ln for ln in err.splitlines() if ln.strip()]
        if code not in (0, 2) or "Traceback" in err or (code == 2 and len(lines) != 1):
            return Outcome(code, out, err, seconds, tmp)
    codes = [c for c, _, _ in outs]
    if all(c == 2 for c in codes):
        return Outcome(2, "", outs[0][2] + outs[1][2], seconds, tmp)
    return Outcome(0, "".join(o for _, o, _ in outs), "".join(e for _, _, e in outs), seconds, tmp,
                   extra={"codes": codes, "argv": [a[3:] for a in argvs]})  # fmt: skip


def _one_clean_file(o: Outcome) -> None:
    codes = o.extra["codes"]
    assert codes.count(0) == 1, f"both writers exited 0 ({codes}): one run's records were overwritten"
    lines = (o.tmp / "out.jsonl").read_text().splitlines()
    bad = 0
    for ln in lines:
        try:
            json.loads(ln)
        except json.JSONDecodeError:
            bad += 1
    assert not bad, f"{bad} corrupt lines of {len(lines)}: the two writers interleaved"
    expect_records("out.jsonl", n=600, sources=["v.mp4" if codes[0] == 0 else "w.mp4"])(o)


register(
    FuzzCase(
        "analyze/two-writers-one-output", "analyze", "outputs", [],
        setup=lambda t: [shutil.copyfile(long_clip(), t / name) for name in ("v.mp4", "w.mp4")],
        expect="either", run=_race, check=_one_clean_file, wrong="lost_or_duplicated", timeout=150, subprocess=True,
        note="nothing locks the output: both processes truncate and write the same file",
    )
)  # fmt: skip
