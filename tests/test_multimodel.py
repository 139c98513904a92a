"""Several models per face: ONNX spec backends, per-model outputs and fusion in records, gatekeeper cascades."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import CLASSES, VIDEO, fer_files

import ferkit
from ferkit.analysis.records import read_records, record_schema, to_record_dicts
from ferkit.errors import InputError, ModelError
from ferkit.faces.align import resize_crop
from ferkit.models.base import sha256_file
from ferkit.models.fusion import ModelOutput, fuse_models
from ferkit.models.loading import BUNDLED_DIR, load_model

SCHEMA = record_schema()
ONNX = BUNDLED_DIR / "ferkit" / "model.onnx"
OWN = ["anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"]  # the bundled order, renamed


def valid(records: list[dict]) -> list[dict]:
    for r in records:
        jsonschema.validate(r, SCHEMA)
    return records


def write_spec(folder: Path, name: str = "renamed", **overrides) -> Path:
    """A spec for the bundled ONNX file under other class names (``overrides`` replace or, with None, drop keys)."""
    spec = {
        "name": name,
        "onnx_file": os.path.relpath(ONNX, folder),  # relative to the spec file
        "input_size": 48,
        "channels": "gray",
        "mean": 0.5,
        "std": [0.5],
        "classes": OWN,
        "sha256": sha256_file(ONNX),  # required: a spec names its weights by hash
    }
    spec = {k: v for k, v in {**spec, **overrides}.items() if v is not None}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def gate_spec(folder: Path) -> Path:
    """A binary gate over the bundled ONNX: neutral vs every other class ("expressive")."""
    cmap = {c: ("neutral" if c == "neutral" else "expressive") for c in CLASSES}
    return write_spec(folder, "expressive-gate", classes=CLASSES, class_map=cmap)


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    import cv2

    return np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 48) for p in fer_files("test", 2)])


def test_spec_backend_equals_bundled_model_with_merged_and_dropped_classes(tmp_path: Path, crops) -> None:
    bundled = load_model("ferkit", calibration=False).predict_proba(crops)
    cmap = {"anger": "angry", "disgust": "angry", "happiness": "happy", "sadness": "sad"}
    merged = load_model(str(write_spec(tmp_path, class_map=cmap)))
    assert merged.classes == ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    assert merged.input_size == 48 and merged.channels == "gray" and merged.calibration is None
    want = np.column_stack([bundled[:, 0] + bundled[:, 1], bundled[:, 2:]])
    assert np.allclose(merged.predict_proba(crops), want, atol=1e-5)
    # Dropping a class renormalises the rest; a plain rename (no map, logits out) passes the logits through.
    dropped = load_model(write_spec(tmp_path, "dropped", class_map={"disgust": None}))
    keep = np.delete(bundled, 1, axis=1)
    assert np.allclose(dropped.predict_proba(crops), keep / keep.sum(axis=1, keepdims=True), atol=1e-5)
    plain = load_model(write_spec(tmp_path, "plain", sha256=merged.sha256))
    assert plain.classes == OWN and np.allclose(plain.predict_proba(crops), bundled, atol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"onnx_file": "missing.onnx"}, "missing.onnx"),
        ({"colour": "blue"}, "'colour'"),
        ({"std": None}, "'std'"),
        ({"layout": "nwhc"}, "'layout'"),
        ({"class_map": {"joy": "happy"}}, "'joy'"),
        ({"sha256": "0" * 64}, "SHA-256 mismatch"),
        ({"input_size": 64}, "does not match the spec"),
        ({"classes": OWN[:6]}, "7 outputs"),
    ],
    ids=["missing-onnx", "unknown-key", "missing-key", "bad-layout", "unknown-mapped-class", "sha", "size", "classes"],
)
def test_spec_errors_name_the_problem(tmp_path: Path, overrides: dict, needle: str) -> None:
    with pytest.raises(ModelError, match=re.escape(needle)):
        load_model(write_spec(tmp_path, **overrides))


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory):
    """``fer`` when it loads, else a spec copy of the bundled model under another name."""
    try:
        return load_model("fer", 1)
    except ModelError:
        return load_model(write_spec(tmp_path_factory.mktemp("spec"), "ferkit-copy", classes=CLASSES), 1)


def test_two_models_fused_on_video_with_csv_round_trip(tmp_path: Path, second_model) -> None:
    out = tmp_path / "two.csv"
    recs = valid(ferkit.analyze(VIDEO, fps=2, model=["ferkit", second_model], fusion="soft", output=out, fmt="csv"))
    names = ["ferkit", second_model.name]
    faces = [r for r in recs if r["face_id"] is not None]
    assert len(recs) == 31 and len(faces) >= 25
    assert all(r["model"] == f"fused({','.join(names)})" for r in recs)
    assert all(r["fusion"] == {"strategy": "soft", "models": names} and list(r["models"]) == names for r in faces)
    for r in faces[:5]:
        outs = [
            ModelOutput(m, CLASSES, np.array([[r["models"][m]["probabilities"][c] for c in CLASSES]])) for m in names
        ]
        fused = fuse_models(outs, "soft")
        assert np.allclose([r["probabilities"][c] for c in fused.classes], fused.probs[0], atol=1e-4)
        assert r["emotion"] == fused.labels[0] and r["gated"] is None and r["gate"] is None
    back = valid(to_record_dicts(read_records(out)))
    assert [b["models"] for b in back] == [r["models"] for r in recs]
    assert [b["fusion"] for b in back] == [r["fusion"] for r in recs]


def test_two_models_without_fusion_report_the_primary(tmp_path: Path, second_model, crops_folder: Path) -> None:
    out = tmp_path / "two.parquet"
    recs = valid(ferkit.analyze(crops_folder, crops=True, model=[second_model, "ferkit"], output=out, fmt="parquet"))
    assert len(recs) == 14
    for r in recs:
        own = r["models"][second_model.name]
        assert r["model"] == second_model.name and r["fusion"] is None and set(r["models"]) == {"ferkit", r["model"]}
        assert r["emotion"] == own["emotion"] and r["probabilities"] == own["probabilities"]
    back = valid(to_record_dicts(read_records(out)))
    assert [b["models"] for b in back] == [r["models"] for r in recs]


def test_gate_withholds_emotions_below_threshold(tmp_path: Path) -> None:
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.analysis.setup import ModelSetup
    from ferkit.api import run_analysis

    gate = str(gate_spec(tmp_path))
    seen: list = []
    setup = ModelSetup(gate=gate, gate_class="expressive", gate_threshold=1.01)
    summary = run_analysis([VIDEO], tmp_path / "g.jsonl", "jsonl", setup, AnalyzeOptions(fps=2), progress=seen.append)
    recs = valid([r.to_dict() for r in seen])
    faces = [r for r in recs if r["face_id"] is not None]
    assert summary.gated == len(faces) >= 25 and not summary.warnings  # plots cope with gated records
    for r in faces:
        assert r["gated"] is True and r["emotion"] is r["confidence"] is r["sentiment"] is None
        assert r["smoothed_emotion"] is None and r["smoothed_probabilities"] is None and r["probabilities"]
        assert r["gate"]["model"] == "expressive-gate" and r["gate"]["class"] == "expressive"
        assert r["gate"]["threshold"] == 1.01 and 0 <= r["gate"]["score"] <= 1
    assert all(r["gate"] is None and r["gated"] is None for r in recs if r["face_id"] is None)
    open_gate = valid(ferkit.analyze(VIDEO, fps=2, gate=gate, gate_class="expressive", gate_threshold=0.0))
    assert [r["gate"]["score"] for r in open_gate if r["gate"]] == [r["gate"]["score"] for r in faces]
    for r in (r for r in open_gate if r["face_id"] is not None):
        assert r["gated"] is False and r["emotion"] and r["smoothed_emotion"]


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"fusion": "soft"}, InputError, "needs at least two models"),
        ({"model": ["ferkit", "SECOND"], "fusion": "vote"}, InputError, "unknown fusion strategy"),
        ({"model": ["ferkit", "SECOND"], "fusion": "reliability"}, InputError, "needs a reliability report"),
        ({"model": ["ferkit", "SECOND"], "reliability": "REPORT"}, InputError, "only applies with fusion"),
        ({"model": ["ferkit", "SECOND"], "fusion": "reliability", "reliability": "REPORT"}, InputError, "no results"),
        ({"model": ["ferkit", "ferkit"]}, ModelError, "two models are named"),
        ({"gate": "ferkit", "gate_class": "neutral"}, ModelError, "must be binary"),
        ({"gate": "GATE", "gate_class": "calm"}, ModelError, "not a class of gate model"),
        ({"gate": "GATE"}, InputError, "needs a gate class"),
        ({"model": ["ferkit", "SECOND"], "calibration": "cal.json"}, InputError, "applies to one model"),
    ],
)
def test_bad_combinations_api(tmp_path: Path, kwargs: dict, error: type, needle: str) -> None:
    from ferkit.analysis.setup import ModelSetup, make_analyzer

    report = {"results": [{"model": "ferkit", "per_class": {c: {"f1": 0.5} for c in CLASSES}}]}
    subst = {"SECOND": str(write_spec(tmp_path, "second", classes=CLASSES)), "GATE": str(gate_spec(tmp_path))}
    subst["REPORT"] = report  # type: ignore[assignment]
    kwargs = {k: [subst.get(x, x) for x in v] if isinstance(v, list) else subst.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(error, match=needle):
        make_analyzer(ModelSetup(**kwargs))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--fusion", "soft"], "needs at least two models"),
        (
            ["--model", "ferkit", "--model", "SECOND", "--fusion", "reliability", "--reliability", "REPORT"],
            "no results",
        ),
        (["--gate", "ferkit", "--gate-class", "neutral"], "must be binary"),
        (["--gate-class", "neutral"], "--gate-class needs --gate"),
    ],
    ids=["fusion-one-model", "report-lacks-model", "gate-not-binary", "gate-class-alone"],
)
def test_cli_bad_combinations_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"results": [{"model": "ferkit", "per_class": {c: {"f1": 0.5} for c in CLASSES}}]}))
    subst = {"SECOND": str(write_spec(tmp_path, "second", classes=CLASSES)), "REPORT": str(report)}
    res = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "analyze", str(VIDEO), "--no-plots", *[subst.get(a, a) for a in args]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "ferkit-results").exists()
