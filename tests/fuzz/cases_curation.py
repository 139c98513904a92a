"""The curation commands (``mine``, ``queue stats``, ``curate``, ``relabel``): a corrupt queue database, a queue from
a newer ferkit, a queue folder or dataset folder that is a file, a label outside the taxonomy, a port in use, bad
rules and undo logs — each one line on stderr with nothing written half."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from .conftest import make_queue
from .inputs import copy_clip, copy_crop, fer_crop
from .registry import FuzzCase, Outcome, Runner, register


def _case(cid: str, command: str, args: Sequence[str], setup: Callable[[Path], None] | None, match: str, **kw) -> None:
    register(FuzzCase(f"{command}/{cid}", command, "curation", list(args), setup=setup, error_match=match, **kw))


def _write(rel: str, data: bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(data)

    return setup


def _queue(*labels: str, version: int | None = None, clip: bool = False) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        make_queue(tmp / "q", fer_crop(), labels, version)
        if clip:
            copy_clip(tmp / "clip.mp4")

    return setup


def _plain_sqlite(tmp: Path) -> None:
    (tmp / "q").mkdir()
    with sqlite3.connect(tmp / "q" / "queue.sqlite") as c:
        c.execute("CREATE TABLE other(x)")
    copy_clip(tmp / "clip.mp4")


CORRUPT = b"SQLite format 3\x00" + b"\x07" * 4000  # a database header over garbage
GARBAGE = b"this is not a database " * 200

# --- the queue database, for each command that opens it -----------------------------------------------------------
OPENERS = {
    "mine": ["mine", "clip.mp4", "--queue", "q"],
    "queue": ["queue", "stats", "q"],
    "curate": ["curate", "q", "--dataset", "out", "--export"],
}
for command, args in OPENERS.items():
    clip = command == "mine"

    def garbage(tmp: Path, data: bytes = GARBAGE, clip: bool = clip) -> None:
        _write("q/queue.sqlite", data)(tmp)
        if clip:
            copy_clip(tmp / "clip.mp4")

    _case("queue-garbage", command, args, garbage, r"corrupt queue database|not a ferkit queue")
    _case("queue-corrupt", command, args, lambda t, c=clip: garbage(t, CORRUPT, c), r"corrupt queue database")
    _case("queue-newer", command, args, _queue(version=99, clip=clip), r"newer than this ferkit")
    _case("queue-not-ferkit", command, args, _plain_sqlite, r"not a ferkit queue database")

_case("queue-is-file", "mine", ["mine", "clip.mp4", "--queue", "q"], lambda t: (copy_clip(t / "clip.mp4"),
      _write("q", b"x")(t)), r"queue folder is a file")  # fmt: skip
_case("missing-source", "mine", ["mine", "nope.mp4", "--queue", "q"], None, r"no such file")
_case("fps-zero", "mine", ["mine", "clip.mp4", "--queue", "q", "--fps", "0"], lambda t: copy_clip(t / "clip.mp4"),
      "fps")  # fmt: skip
_case("cap-negative", "mine", ["mine", "clip.mp4", "--queue", "q", "--cap", "-1"], lambda t: copy_clip(t / "clip.mp4"),
      "cap")  # fmt: skip
_case("no-queue", "queue", ["queue", "stats", "q"], lambda t: (t / "q").mkdir(), r"not a mining queue")
_case("out-is-file", "queue", ["queue", "stats", "q", "--out", "f"], lambda t: (_queue()(t), _write("f", b"x")(t)),
      r"is a file")  # fmt: skip

# --- curate ---------------------------------------------------------------------------------------------------------
EXPORT = ["curate", "q", "--dataset", "out", "--export"]
_case("dataset-is-file", "curate", EXPORT, lambda t: (_queue("happy")(t), _write("out", b"x")(t)), r"is a file")
_case("dataset-under-file", "curate", ["curate", "q", "--dataset", "f/out", "--export"],
      lambda t: (_queue("happy")(t), _write("f", b"x")(t)), r"file")  # fmt: skip
_case("label-outside-taxonomy", "curate", EXPORT, _queue("happy", "joy"), r"'joy'.*not in taxonomy 'extended12'")
_case("label-path", "curate", EXPORT, _queue("../../evil"), r"not in taxonomy")
_case("label-outside-basic7", "curate", [*EXPORT, "--taxonomy", "basic7"], _queue("questioning"),
      r"'questioning'.*not in taxonomy 'basic7'")  # fmt: skip
_case("unknown-taxonomy", "curate", [*EXPORT, "--taxonomy", "nope"], _queue("happy"), r"unknown taxonomy")
_case("export-without-dataset", "curate", ["curate", "q", "--export"], _queue("happy"), r"--export needs --dataset")
_case("port-zero", "curate", ["curate", "q", "--port", "0"], _queue(), r"--port must be in 1-65535")
_case("host-not-local", "curate", ["curate", "q", "--host", "192.0.2.1"], _queue(), r"cannot be bound")


def _port_in_use(tmp: Path, invoke: Runner) -> Outcome:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        return invoke(["curate", "q", "--port", str(s.getsockname()[1])])


register(FuzzCase("curate/port-in-use", "curate", "curation", [], setup=_queue("happy"), run=_port_in_use,
                  error_match=r"127\.0\.0\.1:\d+ is in use"))  # fmt: skip


# --- relabel --------------------------------------------------------------------------------------------------------
def _dataset(tmp: Path) -> None:
    copy_crop(tmp / "ds" / "smile_fake" / "a.png")
    copy_crop(tmp / "ds" / "happy" / "b.png")


def _rules(text: str) -> Callable[[Path], None]:
    return lambda t: (_dataset(t), _write("rules.toml", text.encode())(t))


RELABEL = ["relabel", "ds", "--rules", "rules.toml"]
_case("dataset-is-file", "relabel", RELABEL, lambda t: (_write("ds", b"x")(t), _write("rules.toml", b"")(t)),
      r"dataset is not a folder")  # fmt: skip
_case("rules-unknown-au", "relabel", RELABEL, _rules('[[rule]]\nwithin="happy"\nany_au=["AU99"]\nto="x"\n'),
      r"unknown AU names \['AU99'\]")  # fmt: skip
_case("rules-bad-mode", "relabel", RELABEL, _rules('mode = "delete"\n'), r"mode must be 'move' or 'copy'")
_case("rules-not-toml", "relabel", RELABEL, _rules("[[rule\n"), r"not a readable TOML")
_case("rules-missing", "relabel", RELABEL, _dataset, r"file not found")
_case("rules-rule-keys", "relabel", RELABEL, _rules('[[rule]]\nwithin="a"\nto="b"\nany_au=["AU12"]\nif="x"\n'),
      r"unknown keys")  # fmt: skip
_case("rules-aliases-type", "relabel", RELABEL, _rules('aliases = "x"\n'), r"\[aliases\] must be a table")
_case("undo-garbage", "relabel", ["relabel", "ds", "--undo", "log.jsonl"],
      lambda t: (_dataset(t), _write("log.jsonl", b"not json\n")(t)), r"not a relabel log")  # fmt: skip
_case("undo-escape", "relabel", ["relabel", "ds", "--undo", "log.jsonl"],
      lambda t: (_dataset(t), _write("log.jsonl", b'{"mode":"move","src":"../x.png","dst":"happy/b.png"}\n')(t)),
      r"outside")  # fmt: skip


def _dry_run_moves_nothing(o: Outcome) -> None:
    assert (o.tmp / "ds" / "smile_fake" / "a.png").is_file() and not (o.tmp / "ds" / "hard_case").exists()
    assert "smile_fake/a.png -> hard_case/a.png" in o.stdout


register(FuzzCase("relabel/dry-run", "relabel", "curation", ["relabel", "ds", "--dry-run"], setup=_dataset,
                  expect="ok", check=_dry_run_moves_nothing))  # fmt: skip
