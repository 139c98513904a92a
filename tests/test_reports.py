"""Report files of ``ferkit evaluate`` from a real two-block report (uncalibrated and default ferkit model)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import fer_files
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from ferkit.api import evaluate
from ferkit.evaluation.reports import fmt, markdown_report, markdown_table, slugs, write_report
from ferkit.models.loading import load_model


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """FER2013 test crops, 3 per class, in ``<class>/`` folders, scored by ferkit without and with calibration."""
    root = tmp_path_factory.mktemp("fer") / "fer_small"
    for p in fer_files("test", 3):
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / p.parent.name / p.name)
    return evaluate(root, [load_model("ferkit", calibration=False), load_model("ferkit")], crops=True)


@pytest.fixture(scope="module")
def written(doc: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report") / "out"
    return out, write_report(doc, out)


def test_files_exist_and_pngs_are_images(doc: dict, written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    names = {p.name for p in paths}
    s1, s2 = slugs(doc["results"])
    assert s1 == "ferkit_fer_small" and s2 == "ferkit_fer_small_2"
    expected = {"report.json", "report.md", "per_class_recall.png", "confusion_grid.png"}
    expected |= {f"{kind}_{s}.{ext}" for s in (s1, s2) for kind, ext in (("confusion", "csv"), ("confusion", "png"))}
    expected |= {f"reliability_{s}.png" for s in (s1, s2)}
    assert names == expected
    for p in paths:
        assert p.parent == out and p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            img = cv2.imread(str(p))
            assert img is not None and img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


def test_csv_round_trips(doc: dict, written: tuple[Path, list[Path]]) -> None:
    out, _ = written
    for b, slug in zip(doc["results"], slugs(doc["results"]), strict=True):
        df = pd.read_csv(out / f"confusion_{slug}.csv", index_col=0)
        cm = b["confusion_matrix"]
        assert list(df.columns) == cm["labels"] and list(df.index) == cm["labels"]
        assert df.to_numpy().tolist() == cm["matrix"]


def test_json_and_markdown(doc: dict, written: tuple[Path, list[Path]]) -> None:
    out, _ = written
    assert json.loads((out / "report.json").read_text()) == doc
    md = (out / "report.md").read_text()
    assert markdown_table(doc) in md and "## Per-class recall" in md and "## Protocol" in md
    rows = markdown_table(doc).splitlines()[2:]
    assert len(rows) == len(doc["results"]) == 2
    for row, b in zip(rows, doc["results"], strict=True):
        assert f"| {fmt(b['accuracy'])} |" in row and f"| {fmt(b['macro_f1'])} |" in row
        assert f"| {b['n']} |" in row
        assert b["model_sha256"][:12] + "…" in md
    assert "calibration: none" in md  # the first block is explicitly uncalibrated


def test_metrics_match_sklearn(doc: dict) -> None:
    for b in doc["results"]:
        assert b["misses"] == 0  # crops: every image is scored, so the matrix holds every prediction
        labels, cm = b["confusion_matrix"]["labels"], np.array(b["confusion_matrix"]["matrix"])
        y_true = [labels[i] for i in range(len(labels)) for j in range(len(labels)) for _ in range(cm[i, j])]
        y_pred = [labels[j] for i in range(len(labels)) for j in range(len(labels)) for _ in range(cm[i, j])]
        assert len(y_true) == b["n"] == 21
        assert accuracy_score(y_true, y_pred) == pytest.approx(b["accuracy"])
        assert balanced_accuracy_score(y_true, y_pred) == pytest.approx(b["balanced_accuracy"])
        present = sorted(set(y_true), key=labels.index)
        macro = f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        assert macro == pytest.approx(b["macro_f1"])


def test_missing_ece_empty_bins_and_calibration_text(doc: dict, tmp_path: Path) -> None:
    b = copy.deepcopy(doc["results"][0])
    b["ece"] = None
    b["reliability"] = [{**r, "count": 0, "accuracy": None, "confidence": None} for r in b["reliability"]]
    b["protocol"]["calibration"] = {"bias": [0.1] * 7, "temperature": 1.5, "method": "bias+t", "objective": "nll"}
    one = {"ferkit_version": doc["ferkit_version"], "results": [b]}
    paths = write_report(one, tmp_path / "one")
    assert {p.name for p in paths} == {
        "report.json",
        "report.md",
        "confusion_ferkit_fer_small.csv",
        "confusion_ferkit_fer_small.png",
        "reliability_ferkit_fer_small.png",
    }
    md = markdown_report(one)
    assert "| n/a |" in md and "T=1.500" in md
