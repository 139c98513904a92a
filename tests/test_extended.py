"""The shipped extended-taxonomy model ``ferkit-extended`` (issue 15): its classes, its card, its basic view, and
analysis that reports its own labels beside the mapped-back ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from conftest import fer_files

import ferkit
from ferkit.faces.align import resize_crop
from ferkit.labels.taxonomy import load_taxonomy
from ferkit.models.loading import load_model

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "woman_talking.mp4"


def test_extended_model_has_the_extended12_classes_and_an_honest_card() -> None:
    model = load_model("ferkit-extended")
    assert model.classes == list(load_taxonomy("extended12").classes)
    card = model.card.extra
    assert "questioning and boredom had no training images" in card["classes_note"]
    shipped = card["metrics"]["shipped"]
    assert shipped["fer2013_test_basic7"]["n"] == 7178 and shipped["fer2013_test_basic7"]["accuracy"] >= 0.677
    assert card["training"]["taxonomy"] == "extended12" and card["training"]["seed"] == 0


def test_basic_view_scores_fer_faces_and_keeps_the_models_ranking() -> None:
    full, basic = load_model("ferkit-extended"), load_model("ferkit-extended:basic7")
    files = fer_files("test", 15)
    crops = np.stack([resize_crop(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), 48) for p in files])
    p_full, p_basic = full.predict_proba(crops), basic.predict_proba(crops)
    acc = np.mean([basic.classes[i] == f.parent.name for i, f in zip(p_basic.argmax(1), files, strict=True)])
    assert acc > 0.5  # chance 1/7; the whole test set is in the card
    cols = [full.classes.index(c) for c in basic.classes]
    ranked = p_full[:, cols].argmax(1)
    assert (ranked == p_basic.argmax(1)).all()  # the view renormalises, it does not reorder


def test_analysis_reports_extended_labels_and_the_mapping_back() -> None:
    recs = ferkit.analyze(VIDEO, model=["ferkit-extended", "ferkit-extended:basic7"], fps=2)
    faces = [r for r in recs if r.get("face_id") is not None]
    assert faces
    extended12 = set(load_taxonomy("extended12").classes)
    for r in faces:
        assert r["emotion"] in extended12 and set(r["probabilities"]) == extended12
        basic = r["models"]["ferkit-extended:basic7"]
        assert set(basic["probabilities"]) == set(load_taxonomy("basic7").classes)
