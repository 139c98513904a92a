"""Hostile still images: empty, truncated, not an image, unusual pixel formats (16-bit, float, CMYK, gray+alpha),
huge or degenerate dimensions (native aborts: run in a subprocess), directories and links where files should be,
and file names that are not UTF-8 or hold a newline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .inputs import (
    blank_png,
    copy_blank,
    copy_crop,
    crop_pixels,
    fer_crop,
    png_with_header,
    put_file,
    write_array,
    write_face_photo,
)
from .registry import FuzzCase, Outcome, expect_records, fuzz_case, read_jsonl, register

ANALYZE = ["analyze", "--no-plots", "-o", "out.jsonl"]


def _bad(cid: str, name: str, setup, crops: bool = True, **kw: object) -> None:
    """An explicitly named bad file: a one-line error."""
    register(
        FuzzCase(
            f"analyze/image-{cid}", "analyze", "images",
            [*ANALYZE, *(["--crops"] if crops else []), name], setup=setup, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


JPEG = fer_crop("happy", 0).read_bytes()
_bad("zero-byte", "x.jpg", put_file("x.jpg", b""))
_bad("truncated-jpeg-300b", "x.jpg", put_file("x.jpg", JPEG[:300]))
_bad("truncated-jpeg-header-only", "x.jpg", put_file("x.jpg", JPEG[:20]))
_bad("jpeg-soi-only", "x.jpg", put_file("x.jpg", b"\xff\xd8"))
_bad("text-as-jpg", "x.jpg", put_file("x.jpg", b"hello, I am not a picture\n"))
_bad("html-as-png", "x.png", put_file("x.png", b"<html><body>404</body></html>"))
_bad("random-bytes-as-png", "x.png", put_file("x.png", os.urandom(4096)))
_bad("png-magic-only", "x.png", put_file("x.png", b"\x89PNG\r\n\x1a\n"))
_bad("png-zero-size", "x.png", put_file("x.png", png_with_header(0, 0)))
_bad("png-header-lies-small", "x.png", put_file("x.png", png_with_header(640, 480)), note="IDAT far too short")
_bad("png-bad-crc", "x.png", put_file("x.png", blank_png(64, 64)[:29] + b"\0\0\0\0" + blank_png(64, 64)[33:]))
_bad("mp4-as-jpg", "x.jpg", lambda t: copy_blank(t / "x.jpg"))
_bad("no-suffix-text", "README", put_file("README", b"just words"))
_bad("missing-file", "nope.jpg", None)
_bad("dangling-symlink", "x.jpg", lambda t: (t / "x.jpg").symlink_to(t / "gone.jpg"))
_bad("symlink-loop", "x.jpg", lambda t: ((t / "x.jpg").symlink_to("y.jpg"), (t / "y.jpg").symlink_to("x.jpg")))
_bad("fifo-as-jpg", "x.jpg", lambda t: os.mkfifo(t / "x.jpg"), timeout=20, note="opening a FIFO blocks forever")
_bad("dev-zero-link", "x.png", lambda t: (t / "x.png").symlink_to("/dev/zero"), timeout=20)
_bad("directory-named-jpg-empty", "x.jpg", lambda t: (t / "x.jpg").mkdir())
_bad("proc-self-mem", "/proc/self/mem", None, timeout=20)
_bad("newline-in-name", "x\ny.jpg", put_file("x\ny.jpg", b""), note="the error line must stay one line")
_bad("carriage-return-in-name", "x\ry.jpg", put_file("x\ry.jpg", b""))
_bad("header-1gp", "x.png", put_file("x.png", png_with_header(32767, 32767)), subprocess=True, timeout=60,
     note="refused by the pixel cap before decoding")  # fmt: skip
_bad("header-100mp-truncated", "x.png", put_file("x.png", png_with_header(10000, 10000)), subprocess=True, timeout=60)


def _text_bomb(tmp: Path) -> None:
    import zlib

    from .inputs import png_chunk

    png = blank_png(48, 48)
    bomb = png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 50_000_000, 9))
    (tmp / "x.png").write_bytes(png[:33] + bomb + png[33:])


_bad("png-text-bomb", "x.png", _text_bomb, expect="either", note="a valid 48×48 PNG with a 50 MB zTXt chunk")


# --- unusual but valid pixel formats: the same face must get the same result as the 8-bit original ----------------


def _same_as_original(tol: float = 0.02):
    def check(o: Outcome) -> None:
        recs = {Path(r["source"]).name: r for r in read_jsonl(o.tmp / "out.jsonl")}
        ref, other = recs.pop("ref.png"), list(recs.values())
        assert other, "the converted image has no record"
        for r in other:
            assert r["emotion"] == ref["emotion"], f"{r['source']}: {r['emotion']} vs original {ref['emotion']}"
            diff = max(abs(r["probabilities"][c] - ref["probabilities"][c]) for c in ref["probabilities"])
            assert diff <= tol, f"{r['source']}: probabilities differ from the 8-bit original by {diff:.3f}"

    return check


def _format_case(cid: str, name: str, make, crops: bool = True, tol: float = 0.02, **kw: object) -> None:
    def setup(tmp: Path) -> None:
        g = crop_pixels("happy", 0)
        write_array(tmp / "ref.png", g)
        make(tmp / name, g)

    register(
        FuzzCase(
            f"analyze/image-{cid}", "analyze", "images",
            [*ANALYZE, *(["--crops"] if crops else []), "ref.png", name], setup=setup,
            expect=kw.pop("expect", "either"), check=_same_as_original(tol), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


def _png16(p: Path, g: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(p), g.astype(np.uint16) * 257)


def _rgb48(p: Path, g: np.ndarray) -> None:
    import cv2

    cv2.imwrite(str(p), np.dstack([g, g, g]).astype(np.uint16) * 257)


def _tiff16(p: Path, g: np.ndarray) -> None:
    write_array(p, g.astype(np.uint16) * 257)


def _tiff_float(p: Path, g: np.ndarray) -> None:
    write_array(p, g.astype(np.float32) / 255)


def _tiff_float255(p: Path, g: np.ndarray) -> None:
    write_array(p, g.astype(np.float32))


def _la(p: Path, g: np.ndarray) -> None:
    write_array(p, np.dstack([g, np.full_like(g, 255)]))


def _rgba_transparent(p: Path, g: np.ndarray) -> None:
    write_array(p, np.dstack([g, g, g, np.zeros_like(g)]))


def _cmyk(p: Path, g: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(g).convert("CMYK").save(p, quality=95)


def _palette(p: Path, g: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(g).convert("P").save(p)


def _exif_rot(p: Path, g: np.ndarray) -> None:
    from PIL import Image

    im = Image.fromarray(g)
    exif = im.getexif()
    exif[0x0112] = 9  # invalid orientation value
    im.save(p, exif=exif.tobytes(), quality=95)


def _png_as_jpg(p: Path, g: np.ndarray) -> None:
    write_array(p.with_suffix(".tmp.png"), g)
    p.write_bytes(p.with_suffix(".tmp.png").read_bytes())
    p.with_suffix(".tmp.png").unlink()


def _trailing_garbage(p: Path, g: np.ndarray) -> None:
    write_array(p, g)
    with open(p, "ab") as fh:
        fh.write(os.urandom(2000))


_format_case("16bit-gray-png", "x16.png", _png16, note="I;16 converted to RGB by clipping: a white square")
_format_case("16bit-gray-png-detect", "x16.png", _png16, crops=False, expect="either")
_format_case("48bit-rgb-png", "x48.png", _rgb48)
_format_case("16bit-tiff", "x16.tif", _tiff16)
_format_case("float-tiff-0-1", "xf.tif", _tiff_float, note="float pixels in [0, 1] become black")
_format_case("float-tiff-0-255", "xf255.tif", _tiff_float255)
_format_case("gray-alpha-png", "la.png", _la)
_format_case("rgba-transparent-png", "rgba.png", _rgba_transparent)
_format_case("cmyk-jpeg", "cmyk.jpg", _cmyk, tol=0.05)
_format_case("palette-png", "pal.png", _palette, tol=0.05)
_format_case("invalid-exif-orientation", "exif.jpg", _exif_rot, tol=0.05)
_format_case("png-named-jpg", "fake.jpg", _png_as_jpg)
_format_case("uppercase-suffix", "X.PNG", lambda p, g: write_array(p, g, format="PNG"))
_format_case("trailing-garbage", "tail.png", _trailing_garbage)
_format_case("no-suffix-image", "face", lambda p, g: write_array(p, g, format="PNG"))


@fuzz_case("analyze/image-1bit-png", "analyze", "images", expect="ok", check=expect_records("out.jsonl", n=1))
def _bilevel(tmp: Path) -> list[str]:
    """A 1-bit PNG (mode '1'): converted, analysed as any crop."""
    write_array(tmp / "bw.png", crop_pixels() > 128)
    return [*ANALYZE, "--crops", "bw.png"]


def _gif(tmp: Path) -> None:
    from PIL import Image

    g = crop_pixels()
    frames = [Image.fromarray(g), Image.fromarray(255 - g)]
    frames[0].save(tmp / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


register(
    FuzzCase(
        "analyze/image-animated-gif", "analyze", "images", [*ANALYZE, "--crops", "anim.gif"], setup=_gif,
        expect="either", check=expect_records("out.jsonl", min_n=1),
    )
)  # fmt: skip

# --- degenerate and huge dimensions (subprocess: OpenCV inside MediaPipe aborts on a side >= 32767) --------------

for w, h, crops, expect in [
    (32767, 305, False, "either"),
    (1, 40000, False, "either"),
    (40000, 1, False, "either"),
    (32767, 305, True, "either"),
    (1, 1, False, "either"),
    (2, 2, False, "either"),
    (1, 1, True, "either"),
    (4, 3000, False, "either"),
]:
    register(
        FuzzCase(
            f"analyze/image-dims-{w}x{h}{'-crops' if crops else ''}", "analyze", "images",
            [*ANALYZE, *(["--crops"] if crops else []), "big.png"], setup=put_file("big.png", blank_png(w, h)),
            expect=expect, check=expect_records("out.jsonl", n=1), subprocess=True, timeout=60,  # type: ignore[arg-type]
            note="sides >= SHRT_MAX abort in cv::remap inside MediaPipe" if max(w, h) >= 32767 else "",
        )
    )  # fmt: skip


def _folder_with_huge(tmp: Path) -> None:
    d = tmp / "photos"
    write_face_photo(d / "a.png", "happy", 3)
    write_face_photo(d / "b.png", "sad", 3)
    (d / "m_wide.png").write_bytes(blank_png(32767, 305))
    write_face_photo(d / "z.png", "surprise", 3)


def _good_ones_kept(o: Outcome) -> None:
    names = {Path(r["source"]).name for r in read_jsonl(o.tmp / "out.jsonl")}
    assert {"a.png", "b.png", "z.png"} <= names, f"records only for {sorted(names)}"


register(
    FuzzCase(
        "analyze/folder-with-huge-image", "analyze", "images", [*ANALYZE, "photos"], setup=_folder_with_huge,
        expect="ok", check=_good_ones_kept, subprocess=True, timeout=90, wrong="lost_or_duplicated",
        note="the abort kills the run: the good images before it get no records",
    )
)  # fmt: skip


def _big_blank(tmp: Path) -> None:
    (tmp / "big.png").write_bytes(blank_png(6000, 4000))


register(
    FuzzCase(
        "analyze/image-24mp-blank", "analyze", "images", [*ANALYZE, "big.png"], setup=_big_blank, expect="either",
        check=expect_records("out.jsonl", n=1), subprocess=True, timeout=90,
    )
)  # fmt: skip

# --- folders: bad files inside are skipped, links are not followed into loops, nothing is analysed twice ---------


def _mixed_folder(tmp: Path) -> None:
    d = tmp / "in"
    copy_crop(d / "good.jpg")
    (d / "zero.jpg").write_bytes(b"")
    (d / "cut.jpg").write_bytes(JPEG[:300])
    (d / "text.png").write_bytes(b"text")
    (d / "dir.jpg").mkdir()
    (d / "dangling.jpg").symlink_to(d / "nothing.jpg")
    os.mkfifo(d / "pipe.jpg")


register(
    FuzzCase(
        "analyze/folder-mixed-bad-files", "analyze", "images", [*ANALYZE, "--crops", "in"], setup=_mixed_folder,
        expect="ok", check=expect_records("out.jsonl", n=1, sources=["good.jpg"]), timeout=30,
    )
)  # fmt: skip


def _loop_folder(tmp: Path) -> None:
    d = tmp / "in"
    copy_crop(d / "a.jpg")
    (d / "sub").mkdir()
    copy_crop(d / "sub" / "b.jpg", "sad", 0)
    (d / "sub" / "loop").symlink_to("..")
    (d / "self").symlink_to(".")


register(
    FuzzCase(
        "analyze/folder-symlink-loop", "analyze", "images", [*ANALYZE, "--crops", "in"], setup=_loop_folder,
        expect="ok", check=expect_records("out.jsonl", n=2), timeout=30, wrong="lost_or_duplicated",
    )
)  # fmt: skip


def _same_file_twice(tmp: Path) -> None:
    copy_crop(tmp / "in" / "a.jpg")


register(
    FuzzCase(
        "analyze/same-file-named-twice", "analyze", "images", [*ANALYZE, "--crops", "in/a.jpg", "in/../in/a.jpg"],
        setup=_same_file_twice, expect="either", check=expect_records("out.jsonl", n=1), wrong="lost_or_duplicated",
        note="one file under two spellings: analysed once, or refused",
    )
)  # fmt: skip
register(
    FuzzCase(
        "analyze/file-and-its-folder", "analyze", "images", [*ANALYZE, "--crops", "in", "in/a.jpg"],
        setup=_same_file_twice, expect="either", check=expect_records("out.jsonl", n=1), wrong="lost_or_duplicated",
    )
)  # fmt: skip

# --- file names that are not UTF-8 (subprocess: the real argv and a real, strict stdout) ---------------------------

BAD_NAME = os.fsdecode(b"caf\xe9-\xff.jpg")  # Latin-1 bytes: not UTF-8


def _bad_name_file(tmp: Path) -> None:
    copy_crop(tmp / BAD_NAME)


def _csv_rows(n: int):
    def check(o: Outcome) -> None:
        import csv

        with open(o.tmp / "out.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            rows = list(csv.DictReader(fh))
        assert len(rows) == n, f"{len(rows)} CSV rows"

    return check


def _parquet_rows(n: int):
    def check(o: Outcome) -> None:
        import pandas as pd

        assert len(pd.read_parquet(o.tmp / "out.parquet")) == n

    return check


for fmt, check in [("jsonl", expect_records("out.jsonl", n=1)), ("csv", _csv_rows(1)), ("parquet", _parquet_rows(1))]:
    register(
        FuzzCase(
            f"analyze/non-utf8-name-{fmt}", "analyze", "images",
            ["analyze", "--crops", "--no-plots", "--format", fmt, "-o", f"out.{fmt}", BAD_NAME],
            setup=_bad_name_file, expect="either", check=check, subprocess=True, timeout=60,
            note="surrogate-escaped file names cannot be encoded as UTF-8 text",
        )
    )  # fmt: skip
register(
    FuzzCase(
        "analyze/non-utf8-name-default-output", "analyze", "images", ["analyze", "--crops", "--no-plots", BAD_NAME],
        setup=_bad_name_file, expect="either", subprocess=True, timeout=60,
        note="the default output path (printed on stdout) carries the undecodable name",
    )
)  # fmt: skip
register(
    FuzzCase(
        "analyze/non-utf8-name-missing", "analyze", "images", ["analyze", "--crops", "--no-plots", BAD_NAME],
        subprocess=True, timeout=60, note="the error line names an undecodable path",
    )
)  # fmt: skip


def _bad_name_in_folder(tmp: Path) -> None:
    copy_crop(tmp / "in" / BAD_NAME)
    copy_crop(tmp / "in" / "ok.jpg", "sad", 0)


register(
    FuzzCase(
        "analyze/non-utf8-name-in-folder-csv", "analyze", "images",
        ["analyze", "--crops", "--no-plots", "--format", "csv", "-o", "out.csv", "in"],
        setup=_bad_name_in_folder, expect="ok", check=_csv_rows(2), subprocess=True, timeout=60,
        wrong="lost_or_duplicated",
    )
)  # fmt: skip
