"""The fuzz-case registry: every hostile input the CLI must survive, as data.

A :class:`FuzzCase` says how to build one ``ferkit`` invocation in an empty temporary folder (``setup`` writes the
hostile files, ``args`` returns the argument list after ``ferkit``) and what must happen:

* ``"ok"``: exit 0, and ``check(outcome)`` (if given) accepts the output;
* ``"usage_error"``: exit 2 with exactly one non-empty line on stderr;
* ``"either"``: one of the two (a value that may sensibly be accepted or refused);
* ``"help"``: exit 0 or 2 with a usage text (``--help``, no arguments);
* ``"clean_exit"``: any of exit 0, 1 (a batch command reporting failed items) or 2, and ``check`` passes for each
  (``train-batch`` reports per-config failures and exits 1 by design).

A case whose fix is not done yet is listed in ``known_failures.py`` (``"<root cause id>: <one line why>"``): the
suite then expects it to fail (a strict xfail), so a case that starts passing fails the suite until it is unlisted.

In every case: no traceback, no native crash, finished within ``timeout`` seconds, and every file the setup wrote
is byte-identical afterwards (unless listed in ``mutable``). ``subprocess=True`` runs the case as
``python -m ferkit.cli`` in a child process (native aborts, hangs, runaway memory); the rest run in-process through
``ferkit.cli.main()``.

Any test module (also of later commands: ``mine``, ``curate``, ``corpus``, ``pull``…) adds cases with
:func:`register` or the :func:`fuzz_case` decorator, then lists its module in :data:`CASE_MODULES` (or imports it
from ``test_fuzz.py``); ``test_fuzz.py`` parametrises over :func:`all_cases`.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Expect = Literal["ok", "usage_error", "either", "help", "clean_exit"]

#: Failure classes of the catalogue (FAILURES.md); ``wrong`` says which one a case whose output check fails is in.
WRONG_CLASSES = ("silently_wrong", "lost_or_duplicated")

#: Case modules imported by :func:`load_all` (relative to this package). Later commands append theirs.
CASE_MODULES: list[str] = [
    "cases_options",
    "cases_images",
    "cases_datasets",
    "cases_videos",
    "cases_channels",
    "cases_models",
    "cases_configs",
    "cases_outputs",
    "cases_aus",
    "cases_synth",
    "cases_corpus",
    "cases_curation",
    "cases_stock",
    "cases_live",
]


@dataclass
class Outcome:
    """What one run of the CLI did."""

    code: int | None  # exit status (None: killed by the time bound); negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    tmp: Path  # the case's working folder (the CLI ran with it as the current directory)
    timed_out: bool = False
    exception: str | None = None  # in-process: the traceback of an exception that escaped main()
    extra: dict[str, Any] = field(default_factory=dict)  # what custom runners want to hand to their check

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


ArgsBuilder = Callable[[Path], Sequence[str | Path]]
Runner = Callable[[Sequence[str | Path]], Outcome]


@dataclass
class FuzzCase:
    """One hostile invocation and its contract (see the module doc)."""

    id: str  # unique, e.g. "analyze/fps-inf"
    command: str  # the ferkit command it exercises (analyze, evaluate, …)
    kind: str  # input class: options, images, videos, channels, models, configs, outputs, …
    args: ArgsBuilder | Sequence[str | Path]  # argument list after `ferkit`, or a builder taking the tmp folder
    setup: Callable[[Path], None] | None = None  # writes the hostile files into the tmp folder
    expect: Expect = "usage_error"
    check: Callable[[Outcome], None] | None = None  # asserts the output of an exit-0 run is correct
    error_match: str | None = None  # regex the one error line must match (case-insensitive), if given
    timeout: float = 60.0  # seconds
    subprocess: bool = False  # run as `python -m ferkit.cli` (native crashes, hangs, memory)
    memory_mb: int = 3072  # memory the run may add (RLIMIT_AS headroom; subprocess: its whole address space + this)
    mutable: tuple[str, ...] = ()  # glob patterns (relative to tmp) of setup files the command may change
    wrong: str = "silently_wrong"  # failure class when the run exits 0 but its output is wrong (WRONG_CLASSES)
    run: Callable[[Path, Runner], Outcome] | None = None  # custom driver: several invocations (resume, races)
    note: str = ""  # what the case is about (for the catalogue)
    known_failure: str = ""  # "<root cause id>: <why>": not fixed yet; the suite expects it to fail (strict xfail)

    def build(self, tmp: Path) -> list[str]:
        if self.setup is not None:
            self.setup(tmp)
        raw = self.args(tmp) if callable(self.args) else self.args
        return [str(a) for a in raw]


_REGISTRY: dict[str, FuzzCase] = {}


def register(case: FuzzCase) -> FuzzCase:
    """Add a case; ids are unique."""
    if case.id in _REGISTRY:
        raise ValueError(f"duplicate fuzz case id {case.id!r}")
    if case.expect not in ("ok", "usage_error", "either", "help", "clean_exit"):
        raise ValueError(f"{case.id}: unknown expectation {case.expect!r}")
    if case.wrong not in WRONG_CLASSES:
        raise ValueError(f"{case.id}: unknown failure class {case.wrong!r}")
    _REGISTRY[case.id] = case
    return case


def fuzz_case(id: str, command: str, kind: str, **kw: Any) -> Callable[[ArgsBuilder], ArgsBuilder]:
    """Decorator: register the decorated ``fn(tmp) -> args`` (it may write its hostile files first) as a case."""

    def wrap(fn: ArgsBuilder) -> ArgsBuilder:
        register(FuzzCase(id=id, command=command, kind=kind, args=fn, note=kw.pop("note", fn.__doc__ or ""), **kw))
        return fn

    return wrap


def load_all() -> None:
    """Import every module of :data:`CASE_MODULES` (each registers its cases on import)."""
    for name in CASE_MODULES:
        importlib.import_module(f"{__package__}.{name}" if __package__ else name)


def all_cases() -> list[FuzzCase]:
    """Every registered case, with its ``known_failure`` set from :data:`known_failures.KNOWN_FAILURES`."""
    from .known_failures import KNOWN_FAILURES

    load_all()
    unknown = sorted(set(KNOWN_FAILURES) - set(_REGISTRY))
    if unknown:
        raise ValueError(f"known_failures.py names cases that do not exist: {unknown}")
    for case_id, why in KNOWN_FAILURES.items():
        _REGISTRY[case_id].known_failure = why
    return list(_REGISTRY.values())


# ---------------------------------------------------------------------------------------------------------------
# Output checks shared by case modules.


def read_jsonl(path: Path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _finite_probs(rec: dict, key: str = "probabilities") -> None:
    probs = rec.get(key)
    if probs is None:
        return
    vals = list(probs.values())
    assert all(isinstance(v, (int, float)) and v == v and 0 <= v <= 1 for v in vals), f"bad {key}: {probs}"
    assert abs(sum(vals) - 1) < 1e-3, f"{key} do not sum to 1: {probs}"


def expect_records(
    name: str,
    n: int | None = None,
    min_n: int = 1,
    faces: int | None = None,
    sources: Sequence[str] | None = None,
) -> Callable[[Outcome], None]:
    """Check: ``tmp/name`` holds ferkit JSONL records (``n`` of them, or at least ``min_n``), probabilities sane,
    no (source, frame, face) twice; ``faces``: how many have a face; ``sources``: the set of source file names."""

    def check(o: Outcome) -> None:
        path = o.tmp / name
        assert path.is_file(), f"{name} not written"
        recs = read_jsonl(path)
        if n is not None:
            assert len(recs) == n, f"{name}: {len(recs)} records, expected {n}"
        assert len(recs) >= min_n, f"{name}: {len(recs)} records, expected at least {min_n}"
        keys = [(r["source"], r["frame_index"], r["face_id"]) for r in recs]
        assert len(keys) == len(set(keys)), f"{name}: duplicated records"
        for r in recs:
            _finite_probs(r)
            _finite_probs(r, "smoothed_probabilities")
        if faces is not None:
            got = sum(r["face_id"] is not None for r in recs)
            assert got == faces, f"{name}: {got} face records, expected {faces}"
        if sources is not None:
            got_sources = {Path(r["source"]).name for r in recs}
            assert got_sources == set(sources), f"{name}: sources {got_sources}, expected {set(sources)}"

    return check


def expect_files(*names: str) -> Callable[[Outcome], None]:
    """Check: each ``tmp/name`` exists and is not empty."""

    def check(o: Outcome) -> None:
        for name in names:
            p = o.tmp / name
            assert p.exists() and (p.is_dir() or p.stat().st_size > 0), f"{name} missing or empty"

    return check


def all_checks(*checks: Callable[[Outcome], None]) -> Callable[[Outcome], None]:
    def check(o: Outcome) -> None:
        for c in checks:
            c(o)

    return check


def stderr_has(pattern: str) -> Callable[[Outcome], None]:
    """Check: stderr matches ``pattern`` (e.g. a warning that must be printed on exit 0)."""

    def check(o: Outcome) -> None:
        assert re.search(pattern, o.stderr, re.I), f"stderr lacks /{pattern}/: {o.stderr[-400:]!r}"

    return check


def expect_fused(name: str = "fused.jsonl", max_rows: int = 10_000, min_rows: int = 1) -> Callable[[Outcome], None]:
    """Check: ``ferkit fuse`` output with finite window bounds, scores in [0, 1] and a sane number of rows."""

    def check(o: Outcome) -> None:
        rows = read_jsonl(o.tmp / name)
        assert len(rows) >= min_rows, f"{len(rows)} fused rows"
        assert len(rows) <= max_rows, f"{len(rows)} fused rows for a few seconds of input"
        for r in rows:
            s = r["fused_score"]
            assert s is None or (isinstance(s, (int, float)) and 0 <= s <= 1 + 1e-9), f"fused_score {s}"
            for k in ("start", "end"):
                v = r[k]
                assert isinstance(v, (int, float)) and v == v and abs(v) != float("inf"), f"{k} = {v}"
            for ch, vec in r.items():
                if isinstance(vec, dict):
                    assert all(isinstance(p, (int, float)) and p == p and 0 <= p <= 1 + 1e-9 for p in vec.values()), (
                        f"channel {ch} vector {vec}"
                    )

    return check
