"""Option values and command-line shape: unknown options, missing arguments, non-numbers, values below an option's
minimum, and inf / nan / huge / negative values for every numeric option of every command."""

from __future__ import annotations

import json
from pathlib import Path

from .inputs import copy_blank, copy_crop, face_records, labelled_folder, voice_rows, write_jsonl
from .registry import FuzzCase, Outcome, expect_fused, expect_records, register

# --- minimal valid invocations, one per command ----------------------------------------------------------------


def _crop(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")


def _crops2(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg", "happy", 0)
    copy_crop(tmp / "y.jpg", "sad", 0)


def _blank(tmp: Path) -> None:
    copy_blank(tmp / "v.mp4")


def _ds(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 2, ["happy", "sad", "neutral"])


def _channels(tmp: Path) -> None:
    write_jsonl(tmp / "face.jsonl", face_records(6))
    write_jsonl(tmp / "voice.jsonl", voice_rows(6))


def _config(tmp: Path) -> None:
    labelled_folder(tmp / "ds", 2, ["happy", "sad"])
    (tmp / "c.toml").write_text(
        'name = "tiny"\noutput = "runs"\ndevice = "cpu"\nthreads = 1\n[data]\ninput_size = 16\nval_fraction = 0.5\n'
        '[[data.sources]]\npath = "ds"\n[optim]\nepochs = 1\nbatch_size = 2\n[tracking]\nmlflow = false\n'
    )
    (tmp / "cfgs").mkdir()
    (tmp / "cfgs" / "a.toml").write_text((tmp / "c.toml").read_text())


def _run_dir(tmp: Path) -> None:
    (tmp / "run").mkdir()


BASE: dict[str, tuple[list[str], object]] = {
    "analyze": (["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl"], _crop),
    "evaluate": (["evaluate", "ds", "--crops"], _ds),
    "calibrate": (["calibrate", "ds", "--crops", "--method", "grid", "--trials", "5", "-o", "cal.json"], _ds),
    "fuse": (["fuse", "face.jsonl", "voice.jsonl", "-o", "fused.jsonl", "--no-plot"], _channels),
    "models": (["models"], None),
    "demo": (["demo", "--out", "demo"], None),
    "dataset": (["dataset", "ds"], _ds),
    "train": (["train", "c.toml", "--no-export"], _config),
    "train-batch": (["train-batch", "cfgs"], _config),
    "export": (["export", "run"], _run_dir),
}

#: Each command's required argument count (what to drop for "missing argument").
POSITIONAL = {"analyze": 1, "evaluate": 1, "calibrate": 1, "fuse": 2, "dataset": 1, "train": 1, "train-batch": 1,
              "export": 1}  # fmt: skip


def _opt(cid: str, command: str, extra: list[str], expect: str = "usage_error", **kw: object) -> None:
    base, setup = BASE[command]
    register(
        FuzzCase(
            id=f"{command}/{cid}", command=command, kind="options", args=[*base, *extra], setup=setup,  # type: ignore[arg-type]
            expect=expect, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


# --- every command: shape of the command line --------------------------------------------------------------------

register(FuzzCase("cli/no-args", "cli", "options", [], expect="help", note="no_args_is_help"))
register(FuzzCase("cli/help", "cli", "options", ["--help"], expect="help"))
register(FuzzCase("cli/unknown-command", "cli", "options", ["analyse", "x.jpg"], setup=_crop))
register(FuzzCase("cli/unknown-global-option", "cli", "options", ["--verbose", "analyze", "x.jpg"], setup=_crop))
register(FuzzCase("cli/dash-dash-only", "cli", "options", ["--"]))

for command, (_, setup) in BASE.items():
    n_pos = POSITIONAL.get(command, 0)
    register(FuzzCase(f"{command}/help", command, "options", [command, "--help"], expect="help"))
    _opt("unknown-option", command, ["--bogus"])
    _opt("unknown-option-with-value", command, ["--bogus=3"])
    _opt("unknown-short-option", command, ["-Z"])
    if n_pos:
        register(
            FuzzCase(f"{command}/missing-argument", command, "options", [command], setup=setup)  # type: ignore[arg-type]
        )
    else:
        _opt("extra-argument", command, ["surplus"])

# options that need a value, given none (last on the line)
for command, option in [
    ("analyze", "--fps"), ("analyze", "--model"), ("analyze", "--format"), ("analyze", "--gate-threshold"),
    ("evaluate", "--report"), ("calibrate", "--trials"), ("fuse", "--window"), ("fuse", "--hold"),
    ("dataset", "--taxonomy"), ("train", "--set"), ("export", "--out"), ("demo", "--out"),
]:  # fmt: skip
    _opt(f"{option.lstrip('-')}-without-value", command, [option])

# a flag given a value
_opt("flag-with-value", "analyze", ["--crops=yes"])
_opt("flag-with-value", "evaluate", ["--no-calibration=1"])
_opt("negated-flag-not-defined", "analyze", ["--no-crops"])

# non-numbers and values below click's minimum
for command, option, value in [
    ("analyze", "--gate-threshold", "half"),
    ("analyze", "--detect-interval", "0.3s"),
    ("calibrate", "--trials", "many"),
    ("calibrate", "--trials", "2.5"),
    ("calibrate", "--trials", "1e3"),
    ("calibrate", "--holdout", "30%"),
    ("calibrate", "--seed", "abc"),
    ("fuse", "--window", "1s"),
    ("fuse", "--window", ""),
    ("fuse", "--nearest", "near"),
    ("fuse", "--threshold", "high"),
    ("fuse", "--hold", "two"),
    ("fuse", "--hold", "1.5"),
]:
    _opt(f"{option.lstrip('-')}-not-a-number-{value or 'empty'}", command, [f"{option}={value}"])

for command, option, value in [
    ("calibrate", "--trials", "0"),
    ("calibrate", "--trials", "-3"),
    ("fuse", "--hold", "0"),
    ("fuse", "--hold", "-1"),
]:
    _opt(f"{option.lstrip('-')}-below-minimum-{value}", command, [f"{option}={value}"])


# --- analyze --fps on a 1 s, 10-frame video (no face: one no-face record per sampled frame) -----------------------


def _fps(value: str, expect: str, n: int | None = None, sub: bool = False, timeout: float = 6, **kw: object) -> None:
    register(
        FuzzCase(
            f"analyze/fps-{value or 'empty'}", "analyze", "options",
            ["analyze", "v.mp4", f"--fps={value}", "--no-plots", "-o", "out.jsonl"], setup=_blank, expect=expect,  # type: ignore[arg-type]
            check=expect_records("out.jsonl", n=n) if n is not None else expect_records("out.jsonl"),
            subprocess=sub, timeout=timeout, **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_fps("inf", "usage_error", sub=True, note="step 1/inf = 0: the sampling loop never advances")
_fps("Infinity", "usage_error", sub=True)
_fps("1e400", "usage_error", sub=True, note="parses as inf")
_fps("1e9", "either", n=10, sub=True, note="step 1e-9: ~1e9 loop turns per frame")
_fps("1e308", "either", n=10, sub=True, note="step 1e-308 below the float spacing of next_t: never advances")
_fps("nan", "usage_error", note="every comparison with NaN is false: taken as 'every frame'")
_fps("NaN", "usage_error")
_fps("-inf", "usage_error")
_fps("-1", "usage_error")
_fps("0", "usage_error")
_fps("-0", "usage_error")
_fps("0x10", "usage_error")
_fps("5,5", "usage_error")
_fps("", "usage_error")
_fps("ALL", "ok", n=10)
_fps("100", "ok", n=10, note="above the video's rate: every frame once")
_fps("0.5", "ok", n=1)
_fps("1e-9", "ok", n=1, note="one sample per 30 years: the first frame only")
_fps("5e-324", "either", n=1, note="1/fps overflows to inf")
_fps(" 5 ", "ok", n=5)

# --- analyze: gate threshold and detection interval --------------------------------------------------------------

for value, expect in [("nan", "usage_error"), ("inf", "usage_error"), ("-inf", "usage_error"), ("-0.5", "usage_error"),
                      ("1.5", "usage_error"), ("1e308", "usage_error"), ("0.5", "ok")]:  # fmt: skip
    register(
        FuzzCase(
            f"analyze/gate-threshold-{value}", "analyze", "options",
            ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl", "--gate", "ferkit-gate",
             "--gate-class", "expressive", f"--gate-threshold={value}"],
            setup=_crop, expect=expect, check=expect_records("out.jsonl", n=1),  # type: ignore[arg-type]
            note="a gate threshold outside [0, 1] (or NaN) gates every face or none",
        )
    )  # fmt: skip
register(
    FuzzCase(
        "analyze/gate-threshold-nan-without-gate", "analyze", "options",
        ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl", "--gate-threshold=nan"],
        setup=_crop, expect="usage_error",
    )
)  # fmt: skip
register(
    FuzzCase(
        "analyze/gate-class-unknown", "analyze", "options",
        ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl", "--gate", "ferkit-gate",
         "--gate-class", "joy"],
        setup=_crop, expect="usage_error",
    )
)  # fmt: skip

for option, value, expect in [
    *[("detect-interval", v, e) for v, e in [("nan", "usage_error"), ("-1", "usage_error"), ("-inf", "usage_error"),
                                             ("inf", "either"), ("1e308", "either"), ("0", "ok")]],
    *[("checkpoint-every", v, e) for v, e in [("nan", "usage_error"), ("-1", "usage_error"), ("inf", "usage_error"),
                                              ("1e308", "usage_error"), ("2s", "usage_error"), ("0", "ok")]],
    *[("au-fps", v, e) for v, e in [("nan", "usage_error"), ("-1", "usage_error"), ("0", "usage_error"),
                                    ("inf", "usage_error"), ("15fps", "usage_error"), ("all", "ok"), ("1", "ok")]],
]:  # fmt: skip
    register(
        FuzzCase(
            f"analyze/{option}-{value}", "analyze", "options",
            ["analyze", "v.mp4", "--fps", "all", f"--{option}={value}", "--no-plots", "-o", "out.jsonl"],
            setup=_blank, expect=expect, check=expect_records("out.jsonl", n=10),  # type: ignore[arg-type]
        )
    )  # fmt: skip

# --- analyze: other string options -------------------------------------------------------------------------------

for cid, extra in [
    ("format-xml", ["--format", "xml"]),
    ("format-empty", ["--format", ""]),
    ("format-upper", ["--format", "JSONL"]),
    ("detector-unknown-with-crops", ["--detector", "yolo"]),
    ("tta-unknown", ["--tta", "rotate"]),
    ("model-empty", ["--model", ""]),
    ("model-missing", ["--model", "no-such-model"]),
    ("model-view-unknown-taxonomy", ["--model", "ferkit:nope"]),
    ("model-view-empty-taxonomy", ["--model", "ferkit:"]),
    ("model-view-empty-model", ["--model", ":basic7"]),
    ("model-view-wider-than-model", ["--model", "ferkit:extended"]),
    ("model-view-not-a-taxonomy-file", ["--model", "ferkit:out.jsonl"]),
    ("fusion-unknown", ["--model", "ferkit", "--model", "ferkit", "--fusion", "average"]),
    ("fusion-one-model", ["--fusion", "soft"]),
    ("reliability-missing", ["--model", "ferkit", "--model", "ferkit", "--fusion", "reliability",
                             "--reliability", "none.json"]),
    ("calibration-and-no-calibration", ["--calibration", "x.jpg", "--no-calibration"]),
    ("calibration-missing-file", ["--calibration", "nope.json"]),
    ("gate-class-without-gate", ["--gate-class", "expressive"]),
    ("output-suffix-mismatch", ["-o", "out.csv"]),
]:  # fmt: skip
    base, _ = BASE["analyze"]
    args = [a for a in base if a not in ("-o", "out.jsonl")] + (extra if "-o" in extra else [*extra, "-o", "o.jsonl"])
    register(FuzzCase(f"analyze/{cid}", "analyze", "options", args, setup=_crop))

register(
    FuzzCase(
        "analyze/detector-unknown", "analyze", "options",
        ["analyze", "x.jpg", "--no-plots", "-o", "out.jsonl", "--detector", "yolo"], setup=_crop,
    )
)  # fmt: skip
register(
    FuzzCase(
        "analyze/empty-path-argument", "analyze", "options",
        ["analyze", "", "--crops", "--no-plots", "-o", "out.jsonl"], setup=_crop,
        note="Path('') is '.': an empty argument silently analyses the whole current folder",
    )
)  # fmt: skip

# '' as another command's path argument or option ('.' would export, train or overwrite the current folder)
for command, cid, args in [
    ("evaluate", "empty-path-argument", ["evaluate", "", "--crops"]),
    ("fuse", "empty-path-argument", ["fuse", "face.jsonl", "", "--no-plot"]),
    ("train-batch", "empty-path-argument", ["train-batch", ""]),
    ("export", "empty-path-argument", ["export", ""]),
    ("evaluate", "empty-path-out-dir", [*BASE["evaluate"][0], "--out-dir", ""]),
    ("export", "empty-path-test-dir", [*BASE["export"][0], "--test-dir", ""]),
    ("demo", "empty-path-out", ["demo", "--out", ""]),
]:
    setup = BASE[command][1]
    register(FuzzCase(f"{command}/{cid}", command, "options", args, setup=setup, error_match="empty string"))  # type: ignore[arg-type]
register(
    FuzzCase(
        "analyze/format-upper-ok", "analyze", "options",
        ["analyze", "x.jpg", "--crops", "--no-plots", "--format", "CSV", "-o", "out.csv"], setup=_crop,
        expect="either", check=lambda o: None,
    )
)  # fmt: skip

# --- calibrate: trials, holdout, seed, target, fps -----------------------------------------------------------------


def _cal_check(o: Outcome) -> None:
    doc = json.loads((o.tmp / "cal.json").read_text())
    assert all(isinstance(b, float) and b == b and abs(b) < 1e6 for b in doc["bias"]), doc["bias"]
    assert doc["temperature"] > 0


for value, expect in [("nan", "usage_error"), ("inf", "usage_error"), ("-inf", "usage_error"), ("-0.1", "usage_error"),
                      ("1", "usage_error"), ("1.5", "usage_error"), ("0", "ok"), ("1e-300", "either")]:  # fmt: skip
    _opt(f"holdout-{value}", "calibrate", [f"--holdout={value}"], expect, check=_cal_check)
_opt("seed-float-1.0", "calibrate", ["--seed=1.0"], "either", check=_cal_check)
for value in ("-1", "4294967296", "99999999999999999999999"):
    _opt(f"seed-{value[:12]}", "calibrate", [f"--seed={value}"], "either", check=_cal_check,
         note="sklearn/numpy accept seeds in [0, 2**32)")  # fmt: skip
_opt("trials-huge-grid", "calibrate", ["--trials=99999999999999999999"], "either", check=_cal_check, timeout=60)
for cid, extra in [
    ("objective-unknown", ["--objective", "accuracy"]),
    ("method-unknown", ["--method", "random"]),
    ("split-unknown", ["--split", "test"]),
    ("two-labelled-folders", ["ds"]),
]:
    _opt(cid, "calibrate", extra)


def _unlabelled(tmp: Path) -> None:
    _crops2(tmp)


for value, expect in [
    ("happy=nan", "usage_error"),
    ("happy=inf", "usage_error"),
    ("happy=1e308,sad=1e308", "usage_error"),
    ("happy=-1", "usage_error"),
    ("happy=0", "usage_error"),
    ("joy=1", "usage_error"),
    ("happy", "usage_error"),
    ("happy=1=2", "usage_error"),
    (",,,", "usage_error"),
    ("happy=1,sad=1", "ok"),
]:
    register(
        FuzzCase(
            f"calibrate/target-{value[:20]}", "calibrate", "options",
            ["calibrate", "x.jpg", "y.jpg", "--unlabelled", "--crops", "--objective", "distribution",
             f"--target={value}", "--method", "grid", "--trials", "5", "--holdout", "0", "-o", "cal.json"],
            setup=_unlabelled, expect=expect, check=_cal_check,  # type: ignore[arg-type]
        )
    )  # fmt: skip
for value, expect, sub in [("nan", "usage_error", False), ("inf", "usage_error", True), ("-2", "usage_error", False)]:
    register(
        FuzzCase(
            f"calibrate/fps-{value}", "calibrate", "options",
            ["calibrate", "v.mp4", "--unlabelled", "--objective", "distribution", "--target", "happy=1,sad=1",
             f"--fps={value}", "--method", "grid", "--trials", "5", "-o", "cal.json"],
            setup=_blank, expect=expect, subprocess=sub, timeout=6,  # type: ignore[arg-type]
        )
    )  # fmt: skip

# --- fuse: window, nearest, threshold, hold, weights, face ----------------------------------------------------------


_fused_check = expect_fused()


for value, expect, sub in [
    ("0", "usage_error", False), ("-1", "usage_error", False), ("nan", "usage_error", False),
    ("-inf", "usage_error", False), ("inf", "usage_error", False), ("1e-9", "usage_error", True),
    ("1e-300", "usage_error", True), ("5e-324", "usage_error", True), ("1e300", "either", False),
    ("0.25", "ok", False),
]:  # fmt: skip
    _opt(f"window-{value}", "fuse", [f"--window={value}"], expect, check=_fused_check, subprocess=sub, timeout=15,
         memory_mb=1024, note="1e-9 s windows over a 3 s span: 3e9 rows allocated" if sub else "")  # fmt: skip
for value, expect in [("-1", "usage_error"), ("nan", "usage_error"), ("-inf", "usage_error"), ("inf", "either"),
                      ("0", "either")]:  # fmt: skip
    _opt(f"nearest-{value}", "fuse", [f"--nearest={value}"], expect, check=_fused_check)
for value, expect in [("nan", "usage_error"), ("inf", "usage_error"), ("-inf", "usage_error"), ("-1", "either"),
                      ("2", "either"), ("0.3", "ok")]:  # fmt: skip
    _opt(f"threshold-{value}", "fuse", [f"--threshold={value}"], expect, check=_fused_check)
_opt("hold-huge", "fuse", ["--hold=99999999999999999999"], "either", check=_fused_check)
for value, expect in [
    ("face=nan", "usage_error"), ("face=inf", "usage_error"), ("face=1e309", "usage_error"),
    ("face=-1", "usage_error"), ("face=0,voice=0", "usage_error"), ("=1", "usage_error"), ("face", "usage_error"),
    ("face==1", "usage_error"), ("mic=1", "usage_error"), ("face=1,,voice=0.5", "ok"),
]:  # fmt: skip
    _opt(f"weights-{value}", "fuse", [f"--weights={value}"], expect, check=_fused_check)
for value, expect in [("-1", "usage_error"), ("99999999999999999999", "usage_error"), ("", "usage_error"),
                      ("0", "ok"), ("smallest", "usage_error")]:  # fmt: skip
    _opt(f"face-{value or 'empty'}", "fuse", [f"--face={value}"], expect, check=_fused_check)

# --- evaluate / dataset / demo / export string options --------------------------------------------------------------

for cid, extra in [
    ("split-unknown", ["--split", "test"]),
    ("split-validation-no-list", ["--split", "validation", "--model", "ferkit-gate"]),
    ("detector-unknown-with-crops", ["--detector", "none"]),
    ("tta-unknown", ["--tta", "all"]),
    ("model-unknown", ["--model", "ferkit", "--model", "nope"]),
    ("calibration-two-models", ["--model", "ferkit", "--model", "ferkit", "--calibration", "ds"]),
]:
    _opt(cid, "evaluate", extra)
register(FuzzCase("evaluate/detector-unknown", "evaluate", "options", ["evaluate", "ds", "--detector", "none"],
                   setup=_ds))  # fmt: skip
_opt("taxonomy-unknown", "dataset", ["--taxonomy", "basic99"])
_opt("taxonomy-path-traversal", "dataset", ["--taxonomy", "../../../../etc/passwd"])
_opt("set-without-equals", "train", ["--set", "optim.epochs"])
_opt("set-unknown-key", "train", ["--set", "optim.lrr=0.1"])
_opt("set-through-scalar", "train", ["--set", "name.x=1"])
_opt("set-lr-infinity", "train", ["--set", "optim.lr=Infinity"], note="json.loads('Infinity') is inf")
_opt("set-lr-nan", "train", ["--set", "optim.lr=NaN"])
_opt("set-epochs-huge-float", "train", ["--set", "optim.epochs=1e9"])
_opt("set-name-dotdot", "train", ["--set", "name=.."], note="run folder <output>/.. is outside the output folder")
_opt("set-on-batch-unknown-key", "train-batch", ["--set", "optim.lrr=0.1"])
_opt("name-dotdot", "export", ["--name", ".."], note="export of a run folder without best.pt")
