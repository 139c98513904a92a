"""Gate building: a binary head on the bundled model's embedding, exported as a loadable model folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CLASSES, FER, fer_files
from sklearn.metrics import balanced_accuracy_score

from ferkit.faces.align import resize_crop
from ferkit.models.loading import load_model
from ferkit.training.gate import build


def test_gate_folder_loads_and_separates_neutral_from_expressive(tmp_path: Path) -> None:
    data = tmp_path / "fer"
    for split, n in (("train", 40), ("test", 15)):
        for p in fer_files(split, n):
            (data / split / p.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(p, data / split / p.parent.name / p.name)
    out = tmp_path / "gate"
    card = build("ferkit", data, out, "expressive_vs_neutral", data / "test")
    gate = load_model(out)
    assert gate.classes == ["expressive", "neutral"] and gate.sha256 == card["sha256"]
    files = fer_files("test", 15)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 48, "gray") for p in files])
    probs = gate.predict_proba(crops)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    truth = np.array([int(p.parent.name == "neutral") for p in files])
    bal = balanced_accuracy_score(truth, probs.argmax(1))
    assert bal == pytest.approx(card["metrics"]["fer2013_test"]["balanced_accuracy"], abs=1e-6)
    assert bal > 0.6  # chance is 0.5
    members = card["training"]["taxonomy"]["expressive_vs_neutral"]
    assert members == {"expressive": [c for c in CLASSES if c != "neutral"], "neutral": ["neutral"]}
    assert not (FER / "gate").exists()


def test_shipped_gate_matches_the_bundled_model_and_gates_analysis() -> None:
    """The shipped gate was built on the shipped weights, and `analyze --gate ferkit-gate` uses it."""
    from conftest import VIDEO

    import ferkit

    gate, base = load_model("ferkit-gate"), load_model("ferkit", calibration=False)
    assert gate.classes == ["expressive", "neutral"]
    assert gate.card.extra["architecture"]["base_sha256"] == base.sha256
    recs = ferkit.analyze(VIDEO, fps=1, gate="ferkit-gate", gate_class="expressive", gate_threshold=0.5)
    faces = [r for r in recs if r["face_id"] is not None]
    assert faces and all(r["gate"]["model"] == "ferkit-gate" for r in faces)
    assert all(r["gated"] == (r["gate"]["score"] < 0.5) for r in faces)


def test_occluded_copies_hide_part_of_each_face_and_train_a_different_gate(tmp_path: Path) -> None:
    from ferkit.errors import InputError
    from ferkit.training.gate import occlude

    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer_files("test", 4)])
    for how in ("erasing", "gridmask", "both"):
        out = occlude(crops, how, seed=7)
        assert out.shape == crops.shape and out.dtype == np.uint8
        changed = (out != crops).mean(axis=(1, 2))
        assert (changed > 0.05).all() and (changed < 0.6).all(), (how, changed)
        np.testing.assert_array_equal(out, occlude(crops, how, seed=7))  # a seed gives the same occlusion
    data = tmp_path / "fer"
    for p in fer_files("train", 30):
        (data / "train" / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, data / "train" / p.parent.name / p.name)
    clean = build("ferkit", data, tmp_path / "clean", "expressive_vs_neutral", None)
    both = build("ferkit", data, tmp_path / "both", "expressive_vs_neutral", None, occlusion="both")
    assert both["training"]["occlusion"] == "both" and "--occlusion both" in both["training"]["reproduce"][0]
    assert both["sha256"] != clean["sha256"]
    assert both["training"]["train_count"] == clean["training"]["train_count"] > 150  # copies are not counted
    with pytest.raises(InputError, match="--occlusion must be one of"):
        build("ferkit", data, tmp_path / "x", "expressive_vs_neutral", None, occlusion="mask")


def test_shipped_hard_gate_sits_on_the_extended_model_and_passes_clear_faces() -> None:
    """`ferkit-gate-hard` (clear_vs_hard) reads `ferkit-extended`'s features; FER2013 test faces, which are clear
    examples by construction, are mostly called clear; its card carries the validation figures it was chosen by."""
    gate, base = load_model("ferkit-gate-hard"), load_model("ferkit-extended", calibration=False)
    assert gate.classes == ["clear_emotion", "unclear"]
    assert gate.card.extra["architecture"]["base_sha256"] == base.sha256
    metrics = gate.card.extra["metrics"]
    assert metrics["validation"]["balanced_accuracy"] > 0.8 and "validation_gridmask" in metrics
    files = fer_files("test", 10)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 48) for p in files])
    clear = gate.predict_proba(crops).argmax(1) == 0
    assert clear.mean() >= 0.8
