"""The bundled model: integrity check, outputs, and accuracy on a real FER2013 test subset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CLASSES, fer_files

from ferkit.errors import ModelError
from ferkit.faces.align import resize_crop
from ferkit.models.loading import load_model


@pytest.fixture(scope="module", params=["ferkit", "ferkit-wild", "ferkit-wild2"])
def bundled(request):
    """Each shipped emotion model (the default, the in-the-wild fine-tune and the two-member in-the-wild model)."""
    return load_model(request.param)


def test_card_is_complete(bundled) -> None:
    model = bundled
    card = json.loads((model.folder / "card.json").read_text())
    for key in (
        "name",
        "classes",
        "input_size",
        "channels",
        "mean",
        "std",
        "preprocessing",
        "sha256",
        "metrics",
        "architecture",
        "training",
    ):
        assert key in card
    assert card["classes"] == CLASSES
    assert len(card["training"]["validation_files"]) > 2000
    assert (model.folder / "model.onnx").stat().st_size < 20e6


def test_subset_accuracy_far_above_chance(bundled) -> None:
    model = bundled
    files = fer_files("test", 20)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), model.input_size) for p in files])
    probs = model.predict_proba(crops, batch_size=32)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    acc = np.mean([model.classes[i] == p.parent.name for i, p in zip(probs.argmax(1), files, strict=True)])
    assert acc > 0.5  # chance is 1/7; the full test set is scored in benchmarks/


def test_two_member_model_reads_the_default_models_features_and_scores_its_own() -> None:
    """ferkit-wild2's graph: its embedding is the default model's (gates built on it stay valid), its logits are the
    mean of two networks, so they differ from the default's while agreeing on most real faces."""
    duo, v1 = load_model("ferkit-wild2", calibration=False), load_model("ferkit", calibration=False)
    files = fer_files("test", 10)
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files])
    np.testing.assert_allclose(duo.embeddings(crops), v1.embeddings(crops), atol=1e-4)
    z2, z1 = duo.raw_logits(crops), v1.raw_logits(crops)
    assert np.abs(z2 - z1).max() > 0.1  # a second network moves the scores
    assert np.mean(z2.argmax(1) == z1.argmax(1)) > 0.6  # one of its two members is the default model
    card = json.loads((duo.folder / "card.json").read_text())
    assert (
        card["architecture"]["parameters"]
        == 2 * json.loads((v1.folder / "card.json").read_text())["architecture"]["parameters"]
    )


def test_batch_size_does_not_change_predictions(bundled) -> None:
    model = bundled
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer_files("test", 3)])
    np.testing.assert_allclose(model.logits(crops, 1), model.logits(crops, 64), atol=1e-4)


def test_hash_mismatch_is_refused(bundled, tmp_path: Path) -> None:
    model = bundled
    bad = tmp_path / "m"
    shutil.copytree(model.folder, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(bad)


def test_unknown_model_name_lists_known() -> None:
    with pytest.raises(ModelError, match=r"known names: .*ferkit"):
        load_model("no-such-model")


def test_api_functions_survive_importing_their_modules() -> None:
    """``ferkit.evaluate`` / ``ferkit.calibrate`` stay functions after the stage modules are imported."""
    import ferkit
    import ferkit.evaluation.scoring
    import ferkit.models.calibration

    assert callable(ferkit.evaluate) and callable(ferkit.calibrate) and callable(ferkit.analyze)


def test_flip_tta_averages_the_mirror_view(tmp_path: Path) -> None:
    from ferkit.api import evaluate
    from ferkit.errors import InputError
    from ferkit.models.base import set_tta, tta_crops

    m = load_model("ferkit", calibration=False)
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer_files("test", 4)])
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    plain = m.raw_logits(crops)
    set_tta([m], "flip")
    flip = m.raw_logits(crops)
    np.testing.assert_allclose(flip, (plain + m.forward_logits(mirrored)) / 2, atol=1e-5)
    assert np.abs(flip - plain).max() > 1e-3  # the net itself is not mirror-symmetric ...
    np.testing.assert_allclose(m.raw_logits(mirrored), flip, atol=1e-4)  # ... the flip-averaged scores are
    views = tta_crops(crops, "flip_shift", 2)
    assert len(views) == 10 and np.array_equal(views[2][:, :, 2:], crops[:, :, :-2])
    with pytest.raises(InputError, match="--tta: 'rotate' is not one of none, flip, flip_shift, auto"):
        set_tta([m], "rotate")
    for p in fer_files("test", 3):
        (tmp_path / p.parent.name).mkdir(exist_ok=True)
        shutil.copy(p, tmp_path / p.parent.name / p.name)
    block = evaluate(tmp_path, "ferkit", crops=True, tta="flip")["results"][0]
    assert block["protocol"]["tta"] == "flip" and block["n"] == 21


def test_auto_tta_flips_stills_and_leaves_video_single_pass(tmp_path: Path) -> None:
    """The default ``--tta auto``: images (and crops) get the flip average, video frames one pass, in one run."""
    from conftest import VIDEO

    import ferkit
    from ferkit.models.base import resolve_tta

    assert [resolve_tta("auto", v) for v in (False, True)] == ["flip", "none"]
    assert resolve_tta("flip_shift", True) == "flip_shift"
    img = tmp_path / "face.png"
    shutil.copy(fer_files("test", 1, ["fear"])[0], img)
    clip = tmp_path / "clip.mp4"
    shutil.copy(VIDEO, clip)

    def probs(tta: str) -> dict[str, list[dict]]:
        recs = ferkit.analyze([img, clip], fps=1, crops=True, tta=tta)
        by: dict[str, list[dict]] = {}
        for r in recs:
            by.setdefault(Path(r["source"]).name, []).append(r["probabilities"])
        return by

    auto, flip, none = probs("auto"), probs("flip"), probs("none")
    assert len(auto["clip.mp4"]) >= 15 and auto["face.png"] == flip["face.png"] != none["face.png"]
    assert auto["clip.mp4"] == none["clip.mp4"] != flip["clip.mp4"]
    for p in fer_files("test", 3):
        (tmp_path / "set" / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "set" / p.parent.name / p.name)
    assert ferkit.evaluate(tmp_path / "set", crops=True)["results"][0]["protocol"]["tta"] == "flip"


def test_wild_model_is_a_fine_tune_of_the_default_and_reads_the_disgust_clip() -> None:
    """ferkit-wild starts from ferkit's weights (most FER2013 test crops get the same label) and, unlike the default
    as shipped, calls the labelled disgust clip (video_labelled: evaluation only) disgust."""
    import ferkit

    wild, base = load_model("ferkit-wild"), load_model("ferkit")
    files = fer_files("test", 15)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 48) for p in files])
    agree = np.mean(wild.predict_proba(crops).argmax(1) == base.predict_proba(crops).argmax(1))
    assert agree > 0.75
    clip = Path(__file__).resolve().parents[2] / "shared" / "data" / "video_labelled" / "disgust"
    block = ferkit.evaluate(clip.parent, models=["ferkit-wild"])["results"][0]
    row = next(r for r in block["per_clip"] if r["true"] == "disgust")
    assert row["predicted"] == "disgust" and row["frames_scored"] > 10


def test_a_taxonomy_view_renormalises_the_models_own_columns() -> None:
    """``name:taxonomy``: the model's probabilities over the taxonomy's classes, renormalised (calibrated and with
    test-time views as the model itself); a class the model lacks or an unknown taxonomy is one ModelError."""
    full, six = load_model("ferkit"), load_model("ferkit:basic6")
    assert six.name == "ferkit:basic6" and six.classes == [c for c in full.classes if c != "neutral"]
    crops = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fer_files("test", 3)])
    for mode in ("none", "flip"):
        full.tta = six.tta = mode
        p = full.predict_proba(crops)[:, [full.classes.index(c) for c in six.classes]]
        np.testing.assert_allclose(six.predict_proba(crops), p / p.sum(1, keepdims=True), atol=1e-5)
    with pytest.raises(ModelError, match=r"ferkit:extended: the model has no contempt, hard_case, speech_action"):
        load_model("ferkit:extended")
    with pytest.raises(ModelError, match="unknown taxonomy 'nope'"):
        load_model("ferkit:nope")
