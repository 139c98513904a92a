"""Hostile labelled datasets: ``evaluate``, ``dataset`` and ``calibrate`` on class folders holding bad, huge or only
unreadable images, images without a face, and FER2013-style CSVs with bad rows or bytes (input class ``images``)."""

from __future__ import annotations

import json
from pathlib import Path

from .inputs import blank_png, copy_crop, fer_crop, labelled_folder, png16_of_crop, put_file
from .registry import FuzzCase, Outcome, all_checks, register, stderr_has

# --- evaluate / dataset / calibrate on folders holding hostile images ------------------------------------------------


def _hostile_dataset(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 2, ["happy", "sad"])
    (tmp / "ds" / "happy" / "zero.jpg").write_bytes(b"")
    (tmp / "ds" / "happy" / "cut.jpg").write_bytes(fer_crop("happy", 0).read_bytes()[:300])
    (tmp / "ds" / "sad" / "text.png").write_bytes(b"not a picture")
    (tmp / "ds" / "sad" / "loop").symlink_to("..")
    (tmp / "ds" / "notes.txt").write_text("a file among class folders")


def _report_check(n: int, unreadable: int, *names: str):
    """Check: the report's one block scored ``n`` images and skipped ``unreadable`` (among them ``names``)."""

    def check(o: Outcome) -> None:
        (block,) = json.loads((o.tmp / "r.json").read_text())["results"]
        assert block["n"] == n, f"n = {block['n']}, expected {n}"
        assert block["unreadable"] == unreadable, f"unreadable = {block['unreadable']}"
        listed = {Path(f).name for f in block["protocol"]["unreadable_files"]}
        assert set(names) <= listed, f"unreadable_files {sorted(listed)} lack {sorted(set(names) - listed)}"

    return check


register(
    FuzzCase(
        "evaluate/dataset-with-bad-images", "evaluate", "images",
        ["evaluate", "ds", "--crops", "--report", "r.json"], setup=_hostile_dataset, expect="ok",
        check=_report_check(4, 3),
    )
)  # fmt: skip


def _dataset_16bit(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 1, ["happy", "sad"])
    png16_of_crop(tmp / "ds" / "happy" / "h16.png", "happy", 1)


register(
    FuzzCase(
        "evaluate/dataset-16bit-png", "evaluate", "images", ["evaluate", "ds", "--crops", "--report", "r.json"],
        setup=_dataset_16bit, expect="ok", check=_report_check(3, 0),
    )
)  # fmt: skip


def _dataset_huge(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 1, ["happy", "sad"])
    (tmp / "ds" / "sad" / "wide.png").write_bytes(blank_png(32767, 305))


register(
    FuzzCase(
        "evaluate/dataset-huge-image", "evaluate", "images", ["evaluate", "ds", "--report", "r.json"],
        setup=_dataset_huge, expect="ok", subprocess=True, timeout=90,
        check=all_checks(_report_check(2, 1, "wide.png"), stderr_has(r"ds: 1 unreadable image")),
        note="detection on a 32767-px-wide photo aborted the whole evaluation; read_image now refuses it, so it "
        "is skipped and reported like any unreadable image (not scored as a no-face miss)",
    )
)  # fmt: skip


def _only_bad_images(tmp: Path) -> None:
    (tmp / "ds" / "happy").mkdir(parents=True)
    (tmp / "ds" / "happy" / "a.jpg").write_bytes(b"")
    (tmp / "ds" / "sad").mkdir()
    (tmp / "ds" / "sad" / "wide.png").write_bytes(blank_png(32767, 305))


for command, extra in [("evaluate", []), ("calibrate", ["--method", "grid", "--trials", "5", "-o", "cal.json"])]:
    register(
        FuzzCase(
            f"{command}/dataset-only-bad-images", command, "images", [command, "ds", "--crops", *extra],
            setup=_only_bad_images, error_match=r"^error: ds: none of its 2 image\(s\) could be read",
            note="nothing to score: sklearn's metrics raise on empty input",
        )
    )  # fmt: skip


def _no_face_dataset(tmp: Path) -> None:
    for cls in ("happy", "sad"):
        (tmp / "ds" / cls).mkdir(parents=True)
        (tmp / "ds" / cls / "blank.png").write_bytes(blank_png(64, 64))


register(
    FuzzCase(
        "calibrate/dataset-no-face", "calibrate", "images",
        ["calibrate", "ds", "--method", "grid", "--trials", "5", "-o", "cal.json"], setup=_no_face_dataset,
        error_match=r"ds: no face", note="every image readable, none with a face: no logits left to fit",
    )
)  # fmt: skip
register(
    FuzzCase(
        "evaluate/dataset-is-a-file", "evaluate", "images", ["evaluate", "x.jpg", "--crops"],
        setup=lambda t: copy_crop(t / "x.jpg"),
    )
)  # fmt: skip
register(
    FuzzCase(
        "dataset/folder-with-bad-images", "dataset", "images", ["dataset", "ds", "--json", "rep.json"],
        setup=_hostile_dataset, expect="ok", check=lambda o: json.loads((o.tmp / "rep.json").read_text()),
    )
)  # fmt: skip
register(
    FuzzCase(
        "calibrate/dataset-with-bad-images", "calibrate", "images",
        ["calibrate", "ds", "--crops", "--method", "grid", "--trials", "5", "-o", "cal.json"],
        setup=_hostile_dataset, expect="ok", check=lambda o: json.loads((o.tmp / "cal.json").read_text()),
    )
)  # fmt: skip


def _fer_csv(tmp: Path, rows: list[str]) -> None:
    (tmp / "fer.csv").write_text("emotion,pixels,Usage\n" + "".join(r + "\n" for r in rows))


def _fer_csv_rows(rows: list[str]):
    return lambda t: _fer_csv(t, rows)


GOOD_ROW = "3," + " ".join(["128"] * 2304) + ",Training"
for cid, rows, expect in [
    ("csv-pixels-out-of-range", ["3," + " ".join(["999"] * 2304) + ",Training", GOOD_ROW], "ok"),
    ("csv-pixels-negative", ["3," + " ".join(["-1"] * 2304) + ",Training", GOOD_ROW], "ok"),
    ("csv-pixels-float", ["3," + " ".join(["1.5"] * 2304) + ",Training", GOOD_ROW], "ok"),
    ("csv-pixels-huge-int", ["3," + " ".join(["99999999999999999999999"] * 2304) + ",Training", GOOD_ROW], "ok"),
    ("csv-emotion-nan", ["nan," + " ".join(["1"] * 2304) + ",Training", GOOD_ROW], "ok"),
    ("csv-only-bad-rows", ["3,1 2 3,Training"], "usage_error"),
    ("csv-missing-column", [], "usage_error"),
]:
    register(
        FuzzCase(
            f"dataset/{cid}", "dataset", "images", ["dataset", "fer.csv"],
            setup=_fer_csv_rows(rows) if rows else put_file("fer.csv", b"label,pix\n1,2\n"),
            expect=expect,  # type: ignore[arg-type]
        )
    )  # fmt: skip
register(
    FuzzCase(
        "dataset/csv-not-utf8", "dataset", "images", ["dataset", "fer.csv"],
        setup=put_file("fer.csv", b"emotion,pixels\n3,\xff\xfe\xfa\n"), expect="usage_error",
    )
)  # fmt: skip
