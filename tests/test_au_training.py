"""AU-head training (ferkit.training.au_heads) on real CK+ peak frames: the CV learns AU12/AU25 and the written heads
file loads through ferkit.faces.aus and reproduces the trained heads' predictions."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from threadpoolctl import threadpool_limits

from ferkit.faces.aus import AuModel
from ferkit.training.au_data import AUS, AuData, ckplus_files, extract, fer_neutral_files, to_features
from ferkit.training.au_heads import DEFAULT, evaluate, heads_json


@pytest.fixture(scope="module")
def peaks(tmp_path_factory: pytest.TempPathFactory) -> AuData:
    """CK+ peak frames (153) and 20 FER2013 neutral faces, fitted into a fresh cache (``load_data`` would fit all
    1,059 images)."""
    cache = tmp_path_factory.mktemp("au_cache")
    rows = {r["seq"]: r for r in csv.DictReader((DATA / "ckplus_au" / "labels.csv").open(newline=""))}
    files = [f for f in ckplus_files(DATA) if rows["_".join(f.name.split("_")[:2])]["peak_image"] == f.name]
    ck = extract(files, cache / "ck.npz")
    fer = extract(fer_neutral_files(DATA)[:20], cache / "fer.npz")
    seqs = np.array(["_".join(f.name.split("_")[:2]) for f in files])
    return AuData(
        x=to_features(ck), x_mirror=to_features(ck, mirrored=True),
        y=np.array([[int(rows[s][a]) for a in AUS] for s in seqs]),
        subject=np.array([rows[s]["subject"] for s in seqs]),
        seq=seqs, emotion=np.array([rows[s]["emotion"] for s in seqs]), is_peak=np.ones(len(seqs), bool),
        fer=to_features(fer), ck_fits=int(ck["ok"].sum()), fer_files=[], fer_fits=int(fer["ok"].sum()),
    )  # fmt: skip


def test_cv_learns_au12_and_au25(peaks: AuData) -> None:
    assert peaks.ck_fits == 153
    recipe = replace(DEFAULT, frames="peak", fer_neg=20)
    res = evaluate(peaks, recipe, ("AU12", "AU25"), seed=0, outer=2, inner=2)
    for j, au in enumerate(("AU12", "AU25")):
        rate = res["y"][:, j].mean()
        all_present = 2 * rate / (1 + rate)  # F1 of calling every face positive
        assert res["f1"][au] > max(0.75, all_present + 0.15), (au, res["f1"][au], rate)


def test_written_heads_load_and_predict(peaks: AuData, tmp_path: Path) -> None:
    recipe = replace(DEFAULT, frames="peak", fer_neg=20)
    with threadpool_limits(1):
        text, thrs = heads_json(peaks, recipe, cv={})
    path = tmp_path / "au_heads.json"
    path.write_text(text)
    model = AuModel.load(path, sha256=None)
    assert model.neutral.shape == (peaks.x.shape[1],)
    for i in (0, 40, 80):
        probs, _ = model.predict(peaks.x[i])
        for key, name in (("AU12", "AU12"), ("AU25", "AU25"), ("AU12_L", "AU12")):
            head = model.heads.heads[name] if key == name else model.heads.lateral[name]
            assert head.threshold == thrs[name + ("_lateral" if key != name else "")]
            assert (probs[key] >= 0.5) == bool(head.proba(peaks.x[i][None])[0] >= head.threshold)
