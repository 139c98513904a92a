"""The ``ferkit`` command: outputs, bad input (one line, non-zero exit, no traceback), interruption and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FER, VIDEO

from ferkit.analysis.records import load_jsonl


def ferkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ferkit.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def assert_clean_error(res: subprocess.CompletedProcess, needle: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert needle in res.stderr and res.stderr.count("error:") == 1


def test_help_lists_commands(tmp_path: Path) -> None:
    res = ferkit("--help", cwd=tmp_path)
    assert res.returncode == 0 and "analyze" in res.stdout and "evaluate" in res.stdout


def test_default_output_path_and_plots(tmp_path: Path) -> None:
    res = ferkit("analyze", VIDEO, "--fps", "2", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "ferkit-results" / "woman_talking.jsonl"
    assert res.stdout.strip() == "ferkit-results/woman_talking.jsonl"
    assert len(load_jsonl(out)) == 31
    assert (tmp_path / "ferkit-results" / "woman_talking.timeline.png").stat().st_size > 10_000
    assert (tmp_path / "ferkit-results" / "woman_talking.distribution.png").exists()


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


FER_JPEG = sorted((FER / "test" / "happy").iterdir())[0]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: put(d / "notes.jpg", b"hello"), "not an image"),
        (lambda d: put(d / "cut.jpg", FER_JPEG.read_bytes()[:300]), "corrupt or truncated"),
        (lambda d: put(d / "empty.mp4", b""), "empty.mp4: not a readable video"),
        (lambda d: put(d / "garbage.mp4", os.urandom(5000)), "garbage.mp4: not a readable video"),
        (lambda d: put(d / "clip [final].mp4", b"x"), "clip [final].mp4: not a readable video"),
    ],
    ids=["missing", "non-image", "truncated-image", "empty-video", "corrupt-video", "brackets-in-name"],
)
def test_bad_inputs_one_line_errors(tmp_path: Path, make, needle: str) -> None:
    assert_clean_error(ferkit("analyze", make(tmp_path), cwd=tmp_path), needle)


def test_huge_image_refused(tmp_path: Path) -> None:
    big = tmp_path / "huge.png"
    cv2.imwrite(str(big), np.zeros((10_001, 10_001), np.uint8))
    res = ferkit("analyze", big, cwd=tmp_path)
    assert_clean_error(res, "huge.png: image too large")
    assert "corrupt" not in res.stderr and res.stderr.count("huge.png") == 1


def test_bad_options(tmp_path: Path) -> None:
    assert_clean_error(ferkit("analyze", VIDEO, "--fps", "fast", cwd=tmp_path), "--fps")
    assert_clean_error(ferkit("analyze", VIDEO, "--format", "xml", cwd=tmp_path), "--format")
    assert_clean_error(ferkit("analyze", VIDEO, "--model", "nope", cwd=tmp_path), "no model named")
    assert_clean_error(ferkit("analyze", VIDEO, "--detector", "nope", cwd=tmp_path), "unknown detector")
    assert_clean_error(
        ferkit("analyze", VIDEO, "-o", tmp_path / "x.jsonl", "--format", "csv", cwd=tmp_path),
        "does not match --format csv",
    )
    assert_clean_error(ferkit("analyze", VIDEO, "-o", tmp_path, cwd=tmp_path), "cannot write output")
    assert_clean_error(ferkit("evaluate", tmp_path / "nope", cwd=tmp_path), "dataset folder not found")
    assert_clean_error(ferkit("analyze", tmp_path, cwd=tmp_path), "no image or video files")


def _empty_path_argvs() -> list:
    """``ferkit <command> ''`` or ``ferkit <command> --option ''`` for every path parameter of every command."""
    import typing

    import typer

    from ferkit.cli import app

    def commands(group, prefix: list[str]):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):  # a command group (ferkit queue, corpus, synth): its commands
                yield from commands(cmd, [*prefix, name])
            else:
                yield [*prefix, name], cmd

    params = []
    for names, cmd in commands(typer.main.get_command(app), []):
        hints = typing.get_type_hints(cmd.callback)
        for p in cmd.params:
            if Path in (typing.get_args(hints[p.name]) or (hints[p.name],)):
                argv = [*names, ""] if p.param_type_name == "argument" else [*names, p.opts[0], ""]
                params.append(pytest.param(argv, id=f"{' '.join(names)}:{p.name}"))
    return params


@pytest.mark.parametrize("argv", _empty_path_argvs())
def test_every_path_parameter_refuses_an_empty_string(argv: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    """``Path('')`` is ``.``: an empty path would silently name the current folder (analyse it, export it, ...)."""
    from ferkit.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ferkit", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "an empty string is not a path" in err, err
    assert not any(tmp_path.iterdir())


def test_same_input_names_get_distinct_outputs(tmp_path: Path) -> None:
    from ferkit.media.samples import sample_image

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "face.jpg").write_bytes(sample_image().read_bytes())
    res = ferkit("analyze", "a/face.jpg", "b/face.jpg", "--no-plots", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["ferkit-results/face.jsonl", "ferkit-results/face_2.jsonl"]


def test_folder_skips_and_counts_bad_files(tmp_path: Path, crops_folder: Path) -> None:
    res = ferkit("analyze", crops_folder, "--crops", "-o", tmp_path / "c.csv", "--format", "csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "skipped 2 bad file(s)" in res.stderr and "broken.jpg" in res.stderr
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 15  # header + 14 crops


def _records_of(out: Path) -> bytes:
    if out.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(out).to_json(orient="records").encode()
    return out.read_bytes()


def _checkpoint_frame(out: Path) -> int:
    try:
        cp = json.loads((out.parent / (out.name + ".state.json")).read_text())["checkpoint"]
    except (OSError, ValueError, KeyError):
        return -1
    return cp["frame_index"] if cp else -1


@pytest.mark.parametrize(("fmt", "kill_after"), [("jsonl", 40), ("jsonl", 250), ("csv", 120), ("parquet", 180)])
def test_sigkilled_run_resumes_to_the_uninterrupted_records(tmp_path: Path, fmt: str, kill_after: int) -> None:
    """SIGKILL once a checkpoint past frame ``kill_after`` is on disk (the run is then somewhere after it: mid-write,
    mid-batch); --resume must give exactly the records of a run that was never stopped."""
    base = [sys.executable, "-m", "ferkit.cli", "analyze", str(VIDEO), "--fps", "all", "--no-plots", "--format", fmt]
    full, out = tmp_path / f"full.{fmt}", tmp_path / f"v.{fmt}"
    assert ferkit(*base[3:], "-o", full, cwd=tmp_path).returncode == 0
    args = [*base, "-o", str(out), "--checkpoint-every", "0.2"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _checkpoint_frame(out) < kill_after:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    if fmt != "parquet":
        with open(out, "a") as f:  # as if the kill had landed in the middle of a line
            f.write('{"source": "half a rec' if fmt == "jsonl" else VIDEO.name[:5])
    res = ferkit(*base[3:], "-o", out, "--resume", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert _records_of(out) == _records_of(full)


def test_evaluate_report_keys_aliases_and_misses(tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "ds"
    for folder, cls in (("anger", "angry"), ("happiness", "happy"), ("contempt", None)):
        (data / folder).mkdir(parents=True)
        for p in sorted((FER / "test" / (cls or "neutral")).iterdir())[:6]:
            shutil.copy(p, data / folder / p.name)
    cv2.imwrite(str(data / "happiness" / "blank.png"), np.full((120, 120), 90, np.uint8))  # no face → a miss
    report = tmp_path / "r.json"
    res = ferkit("evaluate", data, "--report", report, "--out-dir", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr  # a dataset with 2 of 7 classes is normal, not a library warning
    (block,) = json.loads(report.read_text())["results"]
    assert {"n", "accuracy", "macro_f1", "misses", "per_class", "confusion_matrix"} <= set(block)
    assert {"balanced_accuracy", "weighted_f1", "ece", "reliability", "protocol"} <= set(block)
    assert block["protocol"]["class_mapping"] == {"anger": "angry", "happiness": "happy"}
    assert block["protocol"]["split"] == "all" and block["protocol"]["model_sha256"] == block["model_sha256"]
    assert {"report.json", "report.md"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert block["n"] == 13 and block["misses"] >= 1 and block["skipped_classes"] == {"contempt": 6}
    assert set(block["per_class"]) == {"angry", "happy"}
    cm = np.array(block["confusion_matrix"]["matrix"])
    assert cm.sum() == block["n"] - block["misses"]


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    res = ferkit("demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    photo = load_jsonl(tmp_path / "ferkit-results" / "astronaut.jsonl")
    clip = load_jsonl(tmp_path / "ferkit-results" / "astronaut_pan.jsonl")
    assert len(photo) == 1 and photo[0]["face_id"] == 0
    assert len(clip) == 20 and all(r["face_id"] == 0 for r in clip)  # 4 s at the default 5 samples/s
    assert (tmp_path / "ferkit-results" / "astronaut_pan.timeline.png").exists()


def test_resume_after_a_finished_parquet_run_keeps_its_records(tmp_path: Path, crops_folder: Path) -> None:
    import pandas as pd

    out = tmp_path / "c.parquet"
    first = ferkit("analyze", crops_folder, "--crops", "-o", out, "--format", "parquet", "--no-plots", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = pd.read_parquet(out)
    again = ferkit(
        "analyze", crops_folder, "--crops", "-o", out, "--format", "parquet", "--no-plots", "--resume", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert "1 records" in again.stderr  # only the last frame is redone, the 13 finished ones are kept
    after = pd.read_parquet(out)
    assert len(after) == len(before) == 14 and sorted(after["source"]) == sorted(before["source"])
    assert not out.with_suffix(".partial.jsonl").exists()


def test_unknown_tta_is_a_clean_error(tmp_path: Path) -> None:
    img = next((FER / "test" / "happy").iterdir())
    assert_clean_error(ferkit("analyze", img, "--crops", "--tta", "rotate", cwd=tmp_path), "--tta: 'rotate'")
    assert_clean_error(ferkit("evaluate", FER / "test", "--crops", "--tta", "x", cwd=tmp_path), "--tta: 'x'")


def test_every_data_file_ships_in_the_wheel() -> None:
    """`pip install .` (not only the editable install the scripts use) must carry the bundled models, schemas,
    taxonomies and the demo's sample photo: each non-Python file of the package matches a package-data pattern."""
    import fnmatch
    import re

    root = Path(__file__).resolve().parents[1]
    section = (root / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    patterns = re.findall(r'"([^"]+)"', re.search(r"ferkit = \[(.*?)\]", section).group(1))
    pkg = root / "src" / "ferkit"
    data = [p for p in pkg.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert any(p.name == "astronaut.jpg" for p in data) and "assets/samples/*" in patterns
    missing = [str(p) for p in data if not any(fnmatch.fnmatch(str(p.relative_to(pkg)), pat) for pat in patterns)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
