"""The fuzz suite: every registered case (``registry.all_cases()``) against the contract "exit 0 with correct output,
or exit 2 with one line on stderr; no traceback; within the time bound; inputs unchanged", plus Hypothesis
properties over option values, channel files and image bytes.

Set ``FERKIT_FUZZ_LOG=file.jsonl`` to get one JSON line per case (class, summary, timing) for the catalogue.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from .conftest import protected_dirs
from .inputs import copy_blank, copy_crop, face_records, fer_crop, labelled_folder, voice_rows, write_jsonl
from .registry import FuzzCase, Outcome, all_cases, read_jsonl
from .runner import changed_inputs, classify, run_inprocess, run_subprocess, snapshot, stat_snapshot, tb_info

CASES = all_cases()


def test_registry_is_large_enough() -> None:
    assert len(CASES) >= 250, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


def execute(case: FuzzCase, tmp: Path, capfd) -> tuple[str, str, Outcome]:
    """Build, run and judge one case: (class or "pass", what happened, outcome)."""
    args = case.build(tmp)
    before = snapshot(tmp)
    models_before = stat_snapshot(protected_dirs())

    calls: list[list[str]] = []

    def invoke(argv) -> Outcome:
        argv = [str(a) for a in argv]
        calls.append(argv)
        return run_subprocess(argv, tmp, case) if case.subprocess else run_inprocess(argv, tmp, case, capfd)

    outcome = case.run(tmp, invoke) if case.run is not None else invoke(args)
    changed = changed_inputs(before, snapshot(tmp), case.mutable)
    if stat_snapshot(protected_dirs()) != models_before:
        changed.append("the bundled model folder")
    verdict, detail = classify(case, outcome, changed)
    outcome.extra["changed"] = changed
    outcome.extra["argv"] = args if case.run is None else (outcome.extra.get("argv") or calls or None)
    return verdict, detail, outcome


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: FuzzCase, tmp_path: Path, capfd, fuzz_log) -> None:
    verdict, detail, o = execute(case, tmp_path, capfd)
    fuzz_log(
        {
            "id": case.id, "command": case.command, "kind": case.kind, "expect": case.expect,
            "subprocess": case.subprocess, "verdict": verdict, "detail": detail, "code": o.code,
            "seconds": round(o.seconds, 2), "stderr_tail": o.stderr[-1500:], "note": case.note,
            "changed": o.extra.get("changed", []), "argv": o.extra.get("argv"),
            "traceback": tb_info(o.stderr) if "Traceback" in o.stderr else None, "timeout": case.timeout,
        }
    )  # fmt: skip
    assert verdict == "pass", f"[{verdict}] {detail}"


# --- Hypothesis properties ------------------------------------------------------------------------------------------

PROPS = settings(
    max_examples=int(os.environ.get("FERKIT_FUZZ_EXAMPLES", "30")),
    deadline=None,
    database=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a shrink step may be a hang
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Option values: floats of every kind, big integers, and strings that are almost numbers.
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(
        [
            "nan",
            "-nan",
            "inf",
            "+inf",
            "-inf",
            "1e309",
            "-1e309",
            "1e-320",
            "0x10",
            "1_0",
            "٣",
            "1,5",
            "",
            " ",
            "0",
            "-0",
            "1e9",
            "1e-9",
            "Infinity",
            "NaN",
            "1e308",
            "5e-324",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=6),
)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _assert_contract(o: Outcome, must_refuse: bool, bound: float) -> None:
    assert not o.timed_out, f"hang: still running after {bound} s"
    if "Traceback" in o.stderr or o.exception:
        t = tb_info(o.stderr)
        raise AssertionError(f"traceback at {t['ferkit_at'] or t['raised_at']}: {t['last']}")
    if must_refuse:
        assert o.code == 2, f"exit {o.code}: accepted a value that should be refused; {o.stderr[-300:]!r}"
    assert o.code in (0, 2), f"exit {o.code}: {o.stderr[-300:]!r}"
    if o.code == 2:
        assert len(o.stderr_lines) == 1, f"{len(o.stderr_lines)} stderr lines: {o.stderr[-500:]!r}"


def _one_run(setup, argv: list[str], capfd, timeout: float = 8) -> Outcome:
    case = FuzzCase("hypothesis", "hypothesis", "hypothesis", argv, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="ferkit-fuzz-h-") as d:
        tmp = Path(d)
        setup(tmp)
        before = snapshot(tmp)
        o = run_inprocess(argv, tmp, case, capfd)
        o.extra["changed"] = changed_inputs(before, snapshot(tmp), ())
        o.extra["records"] = read_jsonl(tmp / "out.jsonl") if (tmp / "out.jsonl").is_file() and o.code == 0 else None
        o.extra["fused"] = read_jsonl(tmp / "fused.jsonl") if (tmp / "fused.jsonl").is_file() and o.code == 0 else None
    return o


def _fuse_setup(tmp: Path) -> None:
    write_jsonl(tmp / "face.jsonl", face_records(6))
    write_jsonl(tmp / "voice.jsonl", voice_rows(6))


#: (command, option, base argv, setup, validity of a parsed number): invalid values must be refused (exit 2).
NUMERIC_OPTIONS = [
    ("analyze", "--fps", ["analyze", "v.mp4", "--no-plots", "-o", "out.jsonl"], lambda t: copy_blank(t / "v.mp4"),
     lambda x: x is not None and math.isfinite(x) and x > 0),
    ("analyze", "--detect-interval", ["analyze", "v.mp4", "--fps", "all", "--no-plots", "-o", "out.jsonl"],
     lambda t: copy_blank(t / "v.mp4"), lambda x: x is not None and x >= 0),
    ("analyze", "--gate-threshold", ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl", "--gate",
                                     "ferkit-gate", "--gate-class", "expressive"],
     lambda t: copy_crop(t / "x.jpg"), lambda x: x is not None and 0 <= x <= 1),
    ("calibrate", "--holdout", ["calibrate", "ds", "--crops", "--method", "grid", "--trials", "3", "-o", "cal.json"],
     lambda t: labelled_folder(t / "ds", 2, ["happy", "sad"]), lambda x: x is not None and 0 <= x < 1),
    ("calibrate", "--seed", ["calibrate", "ds", "--crops", "--method", "grid", "--trials", "3", "-o", "cal.json"],
     lambda t: labelled_folder(t / "ds", 2, ["happy", "sad"]),
     lambda x: x is not None and math.isfinite(x) and x == int(x) and 0 <= x < 2**32),
    ("fuse", "--window", ["fuse", "face.jsonl", "voice.jsonl", "--no-plot", "-o", "fused.jsonl"], _fuse_setup,
     lambda x: x is not None and math.isfinite(x) and x >= 1e-3),
    ("fuse", "--nearest", ["fuse", "face.jsonl", "voice.jsonl", "--no-plot", "-o", "fused.jsonl"], _fuse_setup,
     lambda x: x is not None and x >= 0),
    ("fuse", "--threshold", ["fuse", "face.jsonl", "voice.jsonl", "--no-plot", "-o", "fused.jsonl"], _fuse_setup,
     lambda x: x is not None and math.isfinite(x)),
    ("fuse", "--hold", ["fuse", "face.jsonl", "voice.jsonl", "--no-plot", "-o", "fused.jsonl"], _fuse_setup,
     lambda x: x is not None and math.isfinite(x) and x == int(x) and x >= 1),
]  # fmt: skip


@pytest.mark.parametrize(
    ("command", "option", "base", "setup", "valid"), NUMERIC_OPTIONS, ids=[f"{c}{o}" for c, o, *_ in NUMERIC_OPTIONS]
)
@PROPS
@given(value=numbers)
def test_numeric_option_values(command, option, base, setup, valid, value, capfd) -> None:
    """Any value of a numeric option: a finished run or one error line; values outside the option's domain
    (non-finite, negative, …; "very small windows" for fuse) are refused rather than run."""
    parsed = _number(value)
    if command == "fuse" and option == "--window" and parsed is not None and 0 < parsed < 1e-3:
        assume(False)  # tiny windows allocate without bound: the subprocess cases cover them
    if command == "analyze" and option == "--fps" and parsed is not None and math.isfinite(parsed) and parsed > 1e5:
        assume(False)  # huge rates loop without bound: the subprocess cases cover them
    o = _one_run(setup, [*base, f"{option}={value}"], capfd)
    _assert_contract(o, must_refuse=not valid(parsed), bound=8)
    assert not o.extra["changed"], o.extra["changed"]
    if o.extra["fused"] is not None:
        for r in o.extra["fused"]:
            assert r["fused_score"] is None or 0 <= r["fused_score"] <= 1 + 1e-9, r


# --- channel files ----------------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)  # fmt: skip
prob_dicts = st.dictionaries(st.sampled_from(["happy", "sad", "neutral", "angry", "", "happy "]), json_scalars,
                             max_size=4)  # fmt: skip
channel_rows = st.fixed_dictionaries(
    {},
    optional={
        "timestamp": st.one_of(st.floats(-5, 5), st.floats(allow_nan=True, allow_infinity=True), json_scalars),
        "label": st.one_of(st.sampled_from(["happy", "sad", "neutral"]), json_scalars),
        "probabilities": st.one_of(prob_dicts, json_scalars, st.lists(json_scalars, max_size=3)),
        "confidence": st.one_of(st.floats(0, 1), json_scalars),
    },
)


def _dump(row: dict) -> str:
    return json.dumps(row, allow_nan=True)


@PROPS
@given(rows=st.lists(channel_rows, min_size=1, max_size=8), as_csv=st.booleans())
def test_channel_file_contents(rows: list[dict], as_csv: bool, capfd) -> None:
    """Any voice channel beside a good face channel: fused rows with scores in [0, 1] from finite, valid inputs, or
    one error line. Rows with non-finite timestamps or negative / non-finite probabilities must be refused."""
    ts = [r.get("timestamp") for r in rows if "timestamp" in r]
    assume(
        all(not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or abs(t) < 1e4 for t in ts)
    )  # fmt: skip  (huge finite timestamps make huge tables: the registry's subprocess cases)

    def setup(tmp: Path) -> None:
        write_jsonl(tmp / "face.jsonl", face_records(6))
        if as_csv:
            import csv

            with open(tmp / "voice.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["timestamp", "label", "probabilities", "confidence"])
                w.writeheader()
                for r in rows:
                    w.writerow({k: (json.dumps(v, allow_nan=True) if isinstance(v, (dict, list)) else v)
                                for k, v in r.items()})  # fmt: skip
        else:
            (tmp / "voice.jsonl").write_text("".join(_dump(r) + "\n" for r in rows))

    voice = "voice.csv" if as_csv else "voice.jsonl"
    o = _one_run(setup, ["fuse", "face.jsonl", voice, "--no-plot", "-o", "fused.jsonl"], capfd)

    def bad_number(v: object) -> bool:
        return isinstance(v, float) and not math.isfinite(v)

    hostile = any(
        bad_number(r.get("timestamp"))
        or (isinstance(r.get("probabilities"), dict)
            and any(bad_number(p) or (isinstance(p, (int, float)) and p < 0) for p in r["probabilities"].values()))
        for r in rows
    )  # fmt: skip
    _assert_contract(o, must_refuse=hostile, bound=8)
    if o.extra["fused"] is not None:
        for r in o.extra["fused"]:
            assert r["fused_score"] is None or 0 <= r["fused_score"] <= 1 + 1e-9, r
            assert isinstance(r["start"], (int, float)) and math.isfinite(r["start"]), r


# --- image bytes ---------------------------------------------------------------------------------------------------

SEED_IMAGES = {"jpg": fer_crop("happy", 0).read_bytes()}


def _png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(fer_crop("sad", 0)).save(buf, format="PNG")
    return buf.getvalue()


SEED_IMAGES["png"] = _png_bytes()


@PROPS
@given(
    kind=st.sampled_from(sorted(SEED_IMAGES)),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
)
def test_mutated_image_bytes(kind: str, cut: int, flips: list[tuple[int, int]], capfd) -> None:
    """A real crop with bytes overwritten and/or cut short: one record or one error line."""
    import io

    from PIL import Image

    data = bytearray(SEED_IMAGES[kind])
    for pos, val in flips:
        if pos < len(data):
            data[pos] = val
    data = bytes(data[: max(cut, 1)]) if cut < len(data) else bytes(data)
    try:  # sides >= 32767 abort natively (subprocess cases cover them); keep this in-process run alive
        with Image.open(io.BytesIO(data)) as im:
            assume(max(im.size) < 30000)
    except Exception:  # noqa: S110 - unreadable header: exactly what is being tested
        pass
    name = f"x.{kind}"
    o = _one_run(lambda t: (t / name).write_bytes(data), ["analyze", "--crops", "--no-plots", "-o", "out.jsonl", name],
                 capfd)  # fmt: skip
    _assert_contract(o, must_refuse=False, bound=8)
    assert not o.extra["changed"], o.extra["changed"]
    if o.code == 0:
        assert len(o.extra["records"]) == 1
