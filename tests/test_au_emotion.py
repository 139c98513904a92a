"""``ferkit-au``, emotion from action units: loading and its integrity checks, predictions on real faces, the
documented fallback for faces the landmarker cannot fit, and the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, FER
from test_cli import ferkit

from ferkit.analysis.records import load_jsonl
from ferkit.errors import ModelError
from ferkit.faces.align import resize_crop
from ferkit.media.images import read_image
from ferkit.models.au_emotion import WEIGHTS_FILE, AuEmotionModel
from ferkit.models.loading import DEFAULT_MODEL, MODEL_FOLDERS, load_model

CK = DATA / "ckplus_au"


@pytest.fixture(scope="module")
def au_model() -> AuEmotionModel:
    m = load_model("ferkit-au")
    assert isinstance(m, AuEmotionModel)
    m.landmarkers.processes = 0  # fit in this thread: no worker processes to start for a handful of crops
    return m


def ck_peaks(emotion: str, n: int) -> list[Path]:
    """The peak frames of the first ``n`` CK+ sequences labelled ``emotion``."""
    lines = [ln.split(",") for ln in (CK / "labels.csv").read_text().splitlines()[1:]]
    return [CK / "images" / r[2] for r in lines if r[3] == emotion][:n]


def crops(paths: list[Path], size: int = 128) -> np.ndarray:
    return np.stack([resize_crop(read_image(p), size, "rgb") for p in paths])


def test_loads_as_a_registered_rgb_model(au_model: AuEmotionModel) -> None:
    assert au_model.name == "ferkit-au" and au_model.channels == "rgb" and au_model.input_size == 128
    assert au_model.classes == list(load_model("ferkit").classes)
    card = json.loads((MODEL_FOLDERS["ferkit-au"] / "card.json").read_text())
    assert {"training", "architecture", "inference"} <= set(card) and card["training"]["seed"] == 0


def test_altered_weights_file_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(MODEL_FOLDERS["ferkit-au"], folder)
    weights = folder / WEIGHTS_FILE
    text = weights.read_text()
    weights.write_text(text.replace('"bias": [', '"bias": [1.0, ', 1)[:-1] + " ")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(folder)
    # The card updated to the altered file's hash: the layer's shape is then what gives it away.
    from ferkit.models.base import sha256_file

    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"sha256": sha256_file(weights)}))
    with pytest.raises(ModelError, match=r"layers\[0\]\.bias has shape"):
        load_model(folder)


def test_clear_expressions_are_recognised(au_model: AuEmotionModel) -> None:
    """Peak frames of posed CK+ happy and surprise sequences (unseen by the emotion classifier)."""
    for emotion in ("happy", "surprise"):
        probs = au_model.predict_proba(crops(ck_peaks(emotion, 4)))
        assert [au_model.classes[k] for k in probs.argmax(1)] == [emotion] * 4
        assert np.allclose(probs.sum(1), 1)


def test_fer2013_happy_faces(au_model: AuEmotionModel) -> None:
    paths = sorted((FER / "test" / "happy").iterdir())[:10]
    labels = [au_model.classes[k] for k in au_model.predict_proba(crops(paths)).argmax(1)]
    assert labels.count("happy") >= 8, labels


def test_unfittable_face_gets_the_fallback(au_model: AuEmotionModel) -> None:
    flat = np.full((2, 128, 128, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (1, 128, 128, 3), dtype=np.uint8)
    happy = crops(ck_peaks("happy", 1))
    batch = np.concatenate([flat, noise, happy])
    _, fitted = au_model.features(batch)
    assert fitted.tolist() == [False, False, False, True]
    probs = au_model.predict_proba(batch)
    assert np.allclose(probs[:3], au_model.head.fallback) and not np.allclose(probs[3], au_model.head.fallback)
    assert au_model.predict_proba(batch[:0]).shape == (0, 7)


def test_mirror_view_is_taken_in_feature_space(au_model: AuEmotionModel) -> None:
    batch = crops(ck_peaks("sad", 2))
    x, ok = au_model.features(batch)
    au_model.tta = "flip"
    try:
        assert np.allclose(au_model.raw_logits(batch), au_model.logits_of(x, ok, mirror=True))
    finally:
        au_model.tta = "none"
    assert np.allclose(au_model.raw_logits(batch), au_model.logits_of(x, ok))


def test_cli_analyze_and_models(tmp_path: Path) -> None:
    for i, p in enumerate(ck_peaks("happy", 2) + ck_peaks("surprise", 1)):
        shutil.copy(p, tmp_path / f"{i}.png")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((48, 48), 90, np.uint8))
    res = ferkit("analyze", ".", "--crops", "--model", "ferkit-au", "--no-plots", "-o", "out.jsonl", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    recs = {Path(r["source"]).name: r for r in load_jsonl(tmp_path / "out.jsonl")}
    assert {n: r["emotion"] for n, r in recs.items() if n != "blank.png"} == {
        "0.png": "happy", "1.png": "happy", "2.png": "surprise"}  # fmt: skip
    assert all(r["model"] == "ferkit-au" for r in recs.values())
    fallback = json.loads((MODEL_FOLDERS["ferkit-au"] / WEIGHTS_FILE).read_text())["fallback"]
    assert np.allclose(list(recs["blank.png"]["probabilities"].values()), fallback, atol=1e-4)
    res = ferkit("models", cwd=tmp_path)
    assert res.returncode == 0 and "ferkit-au" in res.stdout and "128px rgb" in res.stdout, res.stdout
    assert res.stdout.count("(default)") == 1 and DEFAULT_MODEL in res.stdout
