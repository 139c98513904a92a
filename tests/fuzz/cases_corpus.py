"""``ferkit corpus``: bad manifests (unreadable, empty, missing columns, duplicate titles, reserved columns, broken
YAML), missing and corrupt videos in a collection (reported, the others done), run folders holding another run, and
corrupt or missing Parquet parts under report, compare and query."""

from __future__ import annotations

import os
from pathlib import Path

from .inputs import copy_blank, copy_clip
from .registry import FuzzCase, Outcome, register

RUN = ["corpus", "run", "m.csv", "--out", "run", "--every", "10", "--workers", "1"]


def _manifest(text: str, name: str = "m.csv"):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return setup


def _case(cid: str, args: list[str], setup=None, expect: str = "usage_error", **kw: object) -> None:
    register(FuzzCase(f"corpus/{cid}", "corpus", "corpus", args, setup=setup, expect=expect, **kw))  # type: ignore[arg-type]


for cid, text, match in (
    ("manifest-empty", "", "no videos"),
    ("manifest-header-only", "path,title\n", "no videos"),
    ("manifest-no-title", "path,genre\nv.mp4,x\n", "lacks the column"),
    ("manifest-duplicate-title", "path,title\nv.mp4,A\nw.mp4,A\n", "same title"),
    ("manifest-duplicate-file", "path,title\nv.mp4,A\n./v.mp4,B\n", "same file"),
    ("manifest-reserved-column", "path,title,emotion\nv.mp4,A,x\n", "reserved"),
    ("manifest-ragged-row", "path,title\nv.mp4,A,B,C\n", "more fields"),
    ("manifest-empty-title", "path,title\nv.mp4,\n", "empty path or title"),
    ("manifest-newline-column", 'path,title,"a\nb"\nv.mp4,A,x\n', "reserved or not a plain name"),
):
    _case(f"run-{cid}", RUN, _manifest(text), error_match=match)
_case("run-manifest-missing", RUN, error_match="cannot read manifest")
_case("run-manifest-folder", RUN, lambda t: (t / "m.csv").mkdir(), error_match="folder")
_case("run-manifest-binary", RUN, lambda t: (t / "m.csv").write_bytes(b"\xff\xfe\x00" + os.urandom(200)))
_case("run-manifest-other-suffix", ["corpus", "run", "m.txt", "--out", "run"], _manifest("path,title\n", "m.txt"))
_case("run-manifest-yaml-scalar", ["corpus", "run", "m.yaml", "--out", "run"], _manifest("3\n", "m.yaml"))
_case("run-manifest-yaml-broken", ["corpus", "run", "m.yaml", "--out", "run"], _manifest("- {path: [\n", "m.yaml"))
_case("run-manifest-yaml-nested", ["corpus", "run", "m.yaml", "--out", "run"],
      _manifest("- {path: v.mp4, title: A, tags: {a: 1}}\n", "m.yaml"), error_match="scalars")  # fmt: skip
_case("run-every-zero", [*RUN[:-4], "--every", "0"], _manifest("path,title\nv.mp4,A\n"), error_match="--every")
_case("run-every-and-fps", [*RUN, "--fps", "5"], _manifest("path,title\nv.mp4,A\n"), error_match="exclude")
_case("run-fps-inf", [*RUN[:-4], "--fps", "inf"], _manifest("path,title\nv.mp4,A\n"), error_match="--fps")
for cid, value in (("negative", "-1"), ("nan", "nan"), ("inf", "inf"), ("text", "ten")):
    _case(f"run-segment-minutes-{cid}", [*RUN, "--segment-minutes", value], _manifest("path,title\nv.mp4,A\n"),
          error_match="segment-minutes")  # fmt: skip
_case("run-segment-minutes-with-fps", [*RUN[:-4], "--fps", "5", "--segment-minutes", "2"],
      _manifest("path,title\nv.mp4,A\n"), error_match="applies to --every")  # fmt: skip
_case("run-workers-zero", [*RUN[:-2], "--workers", "0"], _manifest("path,title\nv.mp4,A\n"), error_match="workers")
_case("run-address-without-ray", [*RUN, "--address", "auto"], _manifest("path,title\nv.mp4,A\n"))
_case("run-out-is-a-file", RUN, lambda t: (_manifest("path,title\nv.mp4,A\n")(t), (t / "run").write_text("x")))
_case(
    "run-out-is-a-video",
    [*RUN[:4], "v.mp4"],
    lambda t: (_manifest("path,title\nv.mp4,A\n")(t), copy_blank(t / "v.mp4")),
)


def _foreign_run(tmp: Path) -> None:
    _manifest("path,title\nv.mp4,A\n")(tmp)
    (tmp / "run").mkdir()
    (tmp / "run" / "corpus.json").write_text("[]")


_case("run-foreign-corpus-json", RUN, _foreign_run, error_match="not a ferkit corpus run")


def _parts_done(*names: str, failed: int = 0):
    """Check: exit 1 when some videos failed (0 otherwise), a Parquet part for each of ``names`` and no other."""

    def check(o: Outcome) -> None:
        assert o.code == (1 if failed else 0), f"exit {o.code}"
        got = sorted(p.stem for p in (o.tmp / "run" / "records").glob("*.parquet"))
        assert got == sorted(names), f"parts {got}"
        assert f"{failed} failed" in o.stderr, o.stderr[-300:]

    return check


def _collection(tmp: Path) -> None:
    copy_clip(tmp / "good.mp4")
    copy_blank(tmp / "blank.mp4")
    (tmp / "junk.mp4").write_bytes(os.urandom(4000))
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "m.csv").write_text(
        "path,title\ngood.mp4,good\nblank.mp4,blank\njunk.mp4,junk\nempty.mp4,empty\nmissing.mp4,missing\n"
    )


_case("run-missing-and-corrupt-videos", RUN, _collection, expect="clean_exit", subprocess=True, timeout=180,
      check=_parts_done("good", "blank", failed=3),
      note="missing, zero-byte and garbage videos fail alone; the no-face video is done")  # fmt: skip


def _parts(tmp: Path, corrupt: bool = False, videos: int = 2) -> None:
    """A run folder with ``videos`` small valid parts (written directly), one of them cut when ``corrupt``."""
    import pandas as pd

    (tmp / "run" / "records").mkdir(parents=True)
    for i in range(videos):
        rows = pd.DataFrame({"video_id": f"v{i}", "title": f"V{i}", "path": f"v{i}.mp4", "duration_s": 10.0,
                             "frame_index": [0, 10], "timestamp": [0.0, 0.4], "time_pct": [0.0, 4.0],
                             "face_id": [0, 0], "model": "ferkit", "emotion": ["happy", "sad"], "models": None,
                             "p_happy": [0.9, 0.2], "p_sad": [0.1, 0.8]})  # fmt: skip
        rows.to_parquet(tmp / "run" / "records" / f"v{i}.parquet")
    if corrupt:
        data = (tmp / "run" / "records" / "v0.parquet").read_bytes()
        (tmp / "run" / "records" / "v0.parquet").write_bytes(data[: len(data) // 2])


_case("report-no-parts", ["corpus", "report", "run"], lambda t: (t / "run").mkdir(), error_match="no corpus records")
_case("report-missing-folder", ["corpus", "report", "nowhere"], error_match="no corpus records")
_case("report-corrupt-part", ["corpus", "report", "run"], lambda t: _parts(t, corrupt=True), error_match="corrupt")
_case("report-bad-group", ["corpus", "report", "run", "--group", "genre"], _parts, error_match="not a manifest column")


def _report_written(o: Outcome) -> None:
    assert {"report.html", "report.md", "videos.csv"} <= {p.name for p in (o.tmp / "run").iterdir()}


_case("report-ok", ["corpus", "report", "run"], _parts, expect="ok", check=_report_written)
_case("query-corrupt-part", ["corpus", "query", "run", "SELECT count(*) FROM records"], lambda t: _parts(t, True))
_case("query-bad-sql", ["corpus", "query", "run", "SELEKT"], _parts, error_match="query failed")
_case("query-empty-sql", ["corpus", "query", "run", " "], _parts, error_match="empty")
_case("query-no-parts", ["corpus", "query", "run", "SELECT 1"], error_match="no corpus records")
_case("compare-too-few-videos", ["corpus", "compare", "a/run", "b/run"],
      lambda t: (_parts(t / "a"), _parts(t / "b")), error_match="at least 3")  # fmt: skip
_case(
    "compare-one-model-run", ["corpus", "compare", "run"], lambda t: _parts(t, videos=3), error_match="several --model"
)
_case("compare-corrupt-part", ["corpus", "compare", "a/run", "b/run"],
      lambda t: (_parts(t / "a", videos=3), _parts(t / "b", True, 3)), error_match="corrupt")  # fmt: skip
_case("help", ["corpus"], expect="help")
_case("run-help", ["corpus", "run", "--help"], expect="help")
