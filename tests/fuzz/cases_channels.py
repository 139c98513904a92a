"""Hostile channel files for ``ferkit fuse``: non-finite, non-numeric, non-UTF-8 and wrongly typed fields, negative
or NaN probabilities, a stray timestamp far away (a huge window table), hostile ferkit face records, and broken CSV,
JSONL and Parquet files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .inputs import face_records, prob_rows, voice_rows, write_jsonl
from .registry import FuzzCase, expect_fused, register

FUSE = ["fuse", "face.jsonl", "--no-plot", "-o", "fused.jsonl"]


def _with_voice(lines: list[object], name: str = "voice.jsonl", face: list[dict] | None = None):
    """A good face channel plus a voice channel made of ``lines`` (dicts are dumped with NaN/Infinity allowed)."""

    def setup(tmp: Path) -> None:
        write_jsonl(tmp / "face.jsonl", face if face is not None else face_records(6))
        text = "".join((ln if isinstance(ln, str) else json.dumps(ln, allow_nan=True)) + "\n" for ln in lines)
        (tmp / name).write_text(text)

    return setup


def _chan(cid: str, lines: list[object], expect: str = "usage_error", name: str = "voice.jsonl", **kw: object) -> None:
    register(
        FuzzCase(
            f"fuse/channel-{cid}", "fuse", "channels", [*FUSE, name], setup=_with_voice(lines, name),
            expect=expect, check=expect_fused(), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


V = voice_rows(6)  # timestamps 0 … 2.5, label happy, confidence 0.8
P = prob_rows(6)


def _set(rows: list[dict], i: int, **fields: object) -> list[dict]:
    out = [dict(r) for r in rows]
    out[i].update(fields)
    return out


# timestamps
_chan("timestamp-inf", _set(V, 2, timestamp=float("inf")), note="math.floor(inf / window) raises OverflowError")
_chan("timestamp-neg-inf", _set(V, 2, timestamp=float("-inf")))
_chan("timestamp-nan", _set(V, 2, timestamp=float("nan")))
_chan("timestamp-string", _set(V, 2, timestamp="soon"))
_chan("timestamp-numeric-string", _set(V, 2, timestamp="1.0"), expect="either")
_chan("timestamp-bool", _set(V, 2, timestamp=True), note="True is taken as the number 1")
_chan("timestamp-object", _set(V, 2, timestamp={"s": 1}))
_chan("timestamp-list", _set(V, 2, timestamp=[1, 2]))
_chan("timestamp-null", _set(V, 2, timestamp=None))
_chan("timestamp-missing", [{k: v for k, v in r.items() if k != "timestamp"} if i == 2 else r for i, r in enumerate(V)])
_chan("timestamp-huge-int", _set(V, 2, timestamp=10**30), subprocess=True, timeout=15, memory_mb=1024)
_chan("timestamp-negative", _set(V, 0, timestamp=-3.0), expect="either")
_chan("stray-timestamp-1e6", _set(V, 5, timestamp=1e6), subprocess=True, timeout=8, memory_mb=1024,
      note="one far-away sample: a million one-second windows")  # fmt: skip
_chan("stray-timestamp-1e9", _set(V, 5, timestamp=1e9), subprocess=True, timeout=15, memory_mb=1024)
register(
    FuzzCase(
        "fuse/channel-stray-timestamp-1e6-nearest", "fuse", "channels", [*FUSE, "voice.jsonl", "--nearest", "0.3"],
        setup=_with_voice(_set(V, 5, timestamp=1e6)), expect="ok", check=expect_fused(),
    )
)  # fmt: skip

# labels and confidence
_chan("label-int", _set(V, 1, label=3))
_chan("label-empty", _set(V, 1, label=""))
_chan("label-object", _set(V, 1, label={"x": 1}))
_chan("label-huge", _set(V, 1, label="x" * 100_000), expect="either")
_chan("confidence-inf", _set(V, 1, confidence=float("inf")))
_chan("confidence-nan", _set(V, 1, confidence=float("nan")), note="NaN confidence is replaced by 1.0")
_chan("confidence-negative", _set(V, 1, confidence=-5))
_chan("confidence-above-one", _set(V, 1, confidence=7.5))
_chan("confidence-string", _set(V, 1, confidence="high"))
_chan("confidence-bool", _set(V, 1, confidence=False), expect="either")

# probabilities
_chan("probs-negative", _set(P, 1, probabilities={"happy": -3.0, "sad": 4.0}), note="fused as they are")
_chan("probs-nan", _set(P, 1, probabilities={"happy": float("nan"), "sad": 0.5}))
_chan("probs-inf", _set(P, 1, probabilities={"happy": float("inf"), "sad": 0.5}))
_chan("probs-all-nan", [dict(r, probabilities={"happy": float("nan")}) for r in P])
_chan("probs-string-values", _set(P, 1, probabilities={"happy": "high", "sad": 0.1}))
_chan("probs-null-value", _set(P, 1, probabilities={"happy": None, "sad": 0.1}))
_chan("probs-bool-value", _set(P, 1, probabilities={"happy": True, "sad": 0.1}))
_chan("probs-not-json-string", _set(P, 1, probabilities="happy:0.9"))
_chan("probs-list", _set(P, 1, probabilities=[0.9, 0.1]))
_chan("probs-number", _set(P, 1, probabilities=0.9))
_chan("probs-empty-dict", _set(P, 1, probabilities={}))
_chan("probs-sum-above-one", _set(P, 1, probabilities={"happy": 1.0, "sad": 1.0, "neutral": 1.0}), expect="either")
_chan("probs-huge-values", _set(P, 1, probabilities={"happy": 1e308, "sad": 1e308}))
_chan("probs-nested", _set(P, 1, probabilities={"happy": {"p": 1}}))
_chan("probs-empty-class-name", _set(P, 1, probabilities={"": 1.0}), expect="either")

# whole-file shape
_chan("empty-file", [])
_chan("blank-lines-only", ["", "   ", ""])
_chan("not-json", ["{timestamp: 1, label: happy}"])
_chan("half-written-last-line", [*V[:5], '{"timestamp": 2.5, "lab'], expect="either")
_chan("json-array-line", [*V[:3], "[1, 2, 3]", *V[3:]])
_chan("json-scalar-lines", ["1", "2", "3"])
_chan("json-string-line", [*V[:3], '"happy"', *V[3:]])
_chan("deeply-nested", [*V[:3], "[" * 100_000 + "]" * 100_000], note="json.loads raises RecursionError")
_chan("utf8-bom", ["\ufeff" + json.dumps(V[0]), *V[1:]], expect="either")
_chan("duplicate-keys", ['{"timestamp": 1, "timestamp": "x", "label": "happy"}', *V], expect="either")
_chan("reserved-name", V, name="start.jsonl")
_chan("single-sample", V[:1], expect="either")


def _bytes_channel(name: str, data: bytes):
    def setup(tmp: Path) -> None:
        write_jsonl(tmp / "face.jsonl", face_records(6))
        (tmp / name).write_bytes(data)

    return setup


for cid, name, data in [
    ("not-utf8-jsonl", "voice.jsonl", b'{"timestamp": 0, "label": "caf\xe9"}\n{"timestamp": 1, "label": "happy"}\n'),
    ("not-utf8-csv", "voice.csv", b"timestamp,label\n0,caf\xe9\n1,happy\n"),
    ("binary-jsonl", "voice.jsonl", os.urandom(3000)),
    ("nul-bytes-jsonl", "voice.jsonl", b'{"timestamp": 0, "label": "happy"}\n\0\0\0\n'),
    ("utf16-jsonl", "voice.jsonl", json.dumps(V[0]).encode("utf-16")),
    ("csv-unbalanced-quotes", "voice.csv", b'timestamp,label\n0,"happy\n1,sad\n'),
    ("csv-probabilities-not-json", "voice.csv", b"timestamp,probabilities\n0,happy=1\n1,sad=1\n"),
    ("csv-probabilities-json-list", "voice.csv", b'timestamp,probabilities\n0,"[1, 2]"\n1,"[3]"\n'),
    ("csv-timestamp-inf", "voice.csv", b"timestamp,label\n0,happy\ninf,sad\n"),
    ("csv-header-only", "voice.csv", b"timestamp,label\n"),
    ("csv-no-header", "voice.csv", b"0,happy\n1,sad\n"),
    ("csv-extra-columns", "voice.csv", b"timestamp,label\n0,happy,extra,more\n1,sad\n"),
    ("not-parquet", "voice.parquet", b"PAR1 but not really"),
    ("empty-parquet-suffix", "voice.parquet", b""),
]:
    register(
        FuzzCase(
            f"fuse/channel-{cid}", "fuse", "channels", [*FUSE, name], setup=_bytes_channel(name, data),
            expect="either" if cid == "csv-extra-columns" else "usage_error", check=expect_fused(),
        )
    )  # fmt: skip


# --- hostile ferkit records as the face channel ---------------------------------------------------------------------


def _face(cid: str, edit, expect: str = "usage_error", **kw: object) -> None:
    recs = face_records(6)
    edit(recs)

    def setup(tmp: Path) -> None:
        write_jsonl(tmp / "face.jsonl", recs)
        write_jsonl(tmp / "voice.jsonl", voice_rows(6))

    register(
        FuzzCase(
            f"fuse/face-records-{cid}", "fuse", "channels", [*FUSE, "voice.jsonl"], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=expect_fused(), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_face("box-null", lambda r: r[2].update(box=None), note="float(None) on the box of a record that has a face")
_face("box-short", lambda r: r[2].update(box=[1, 2]))
_face("box-strings", lambda r: r[2].update(box=["a", "b", "c", "d"]))
_face("box-nan", lambda r: r[2].update(box=[0, 0, float("nan"), 10]), expect="either")
_face("timestamp-null", lambda r: r[2].update(timestamp=None))
_face("timestamp-string", lambda r: r[2].update(timestamp="t"))
_face("timestamp-inf", lambda r: r[2].update(timestamp=float("inf")))
_face("face-id-string", lambda r: r[2].update(face_id="zero"), expect="either")
_face("probabilities-nan", lambda r: r[2].update(probabilities=dict.fromkeys(r[2]["probabilities"], float("nan"))))
_face("probabilities-negative", lambda r: r[2]["probabilities"].update(happy=-1.0))
_face("probabilities-string", lambda r: r[2].update(probabilities="lots"))
_face("emotion-only", lambda r: [x.update(probabilities=None) for x in r], expect="either")
_face("no-face-at-all", lambda r: [x.update(face_id=None) for x in r])
_face("missing-box-key", lambda r: r[2].pop("box"))


def _face_csv(tmp: Path) -> None:
    (tmp / "face.csv").write_text("source,frame_index,timestamp,face_id,box_x\nclip.mp4,0,0,0,oops\n")
    write_jsonl(tmp / "voice.jsonl", voice_rows(6))


register(
    FuzzCase(
        "fuse/face-records-csv-broken", "fuse", "channels", ["fuse", "face.csv", "voice.jsonl", "--no-plot", "-o",
                                                             "fused.jsonl"],
        setup=_face_csv, check=expect_fused(),
    )
)  # fmt: skip


def _nonutf8_stem(tmp: Path) -> None:
    write_jsonl(tmp / "face.jsonl", face_records(6))
    write_jsonl(tmp / os.fsdecode(b"voix-\xe9.jsonl"), voice_rows(6))


register(
    FuzzCase(
        "fuse/channel-non-utf8-file-name", "fuse", "channels", [*FUSE, os.fsdecode(b"voix-\xe9.jsonl")],
        setup=_nonutf8_stem, expect="either", check=expect_fused(), subprocess=True, timeout=30,
        note="the file stem becomes a column name of the JSON output",
    )
)  # fmt: skip


def _same_stem(tmp: Path) -> None:
    write_jsonl(tmp / "face.jsonl", face_records(6))
    write_jsonl(tmp / "a" / "voice.jsonl", voice_rows(6))
    write_jsonl(tmp / "b" / "voice.jsonl", voice_rows(6, label="sad"))


register(FuzzCase("fuse/channel-same-stem-twice", "fuse", "channels", [*FUSE, "a/voice.jsonl", "b/voice.jsonl"],
                  setup=_same_stem))  # fmt: skip
register(
    FuzzCase(
        "fuse/channel-same-file-twice", "fuse", "channels", ["fuse", "face.jsonl", "face.jsonl", "--no-plot", "-o",
                                                             "fused.jsonl"],
        setup=_with_voice(V),
    )
)  # fmt: skip
register(
    FuzzCase(
        "fuse/channel-directory", "fuse", "channels", [*FUSE, "voice.jsonl"],
        setup=lambda t: (write_jsonl(t / "face.jsonl", face_records(6)), (t / "voice.jsonl").mkdir()),
    )
)  # fmt: skip
register(
    FuzzCase(
        "fuse/channel-fifo", "fuse", "channels", [*FUSE, "voice.jsonl"], timeout=20,
        setup=lambda t: (write_jsonl(t / "face.jsonl", face_records(6)), os.mkfifo(t / "voice.jsonl")),
    )
)  # fmt: skip
