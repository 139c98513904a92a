"""``ferkit extract-faces`` on real photos: pulled SFEW frames (labels from their queries), FER2013 faces tiled into
a group photo, blurred, tiny and broken images; the tags/rules it writes go through the ``weak_tags`` source."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest
from conftest import DATA, FER, padded_photo
from stock_replay import KEY, server

from ferkit.errors import InputError
from ferkit.stock.client import Client
from ferkit.stock.config import config_from_dict
from ferkit.stock.extract import ExtractOptions, extract_faces
from ferkit.stock.pull import pull

SFEW = DATA / "sfew" / "train"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stock") / "raw"
    cfg = config_from_dict({"classes": {"happy": ["happy smiling"], "sad": ["sad face"]}, "per_page": 3})
    with server() as srv:
        pull("pexels", cfg, out, base_url=srv.base_url, key=KEY, client=Client(backoff_s=0.01, sleep=lambda s: None))
    return out


def test_pulled_photos_become_labelled_crops_for_weak_tags(raw: Path, tmp_path: Path) -> None:
    from ferkit.training.weak import weak_tag_source

    out = tmp_path / "faces"
    report = extract_faces(raw, out)
    state = json.loads((out / "faces.json").read_text())
    assert report["photos"] == 5 and report["faces_kept"] == len(list((out / "faces").iterdir())) >= 4
    for rec in state["photos"].values():
        for face in rec["faces"]:
            crop = cv2.imread(str(out / face["crop"]))
            assert crop.shape == (64, 64, 3) and face["score"] >= 0.6 and face["sharpness"] >= 15
    tags = {r["file"]: r["tags"] for r in csv.DictReader((out / "tags.csv").open())}
    assert set(tags.values()) <= {"happy;smiling", "sad;face", "happy;smiling;sad;face"}
    samples, weak = weak_tag_source(out, out / "tags.csv", out / "rules.toml", "stock")
    # photo 102 was found by a happy and a sad query: a conflict, never a label
    both = [f for f, t in tags.items() if t == "happy;smiling;sad;face"]
    assert len(both) == 1 and weak.conflicts == [(both[0], ["happy", "sad"])]
    assert {s.raw_label for s in samples} == {"happy", "sad"} and len(samples) == report["faces_kept"] - 1
    credits = list(csv.DictReader((out / "credits.csv").open()))
    assert len(credits) == report["faces_kept"] and all(
        c["licence_url"].startswith("https://www.pexels") for c in credits
    )
    assert report["kept_per_class"]["(several classes)"] == 1


def _photo_folder(root: Path) -> Path:
    root.mkdir()
    faces = [padded_photo(sorted((FER / "test" / c).iterdir())[3]) for c in ("happy", "surprise", "sad", "angry")]
    big = [cv2.resize(f, None, fx=2, fy=2) for f in faces]
    group = cv2.vconcat([cv2.hconcat(faces[:2]), cv2.hconcat(faces[2:])])
    cv2.imwrite(str(root / "group.png"), cv2.hconcat([cv2.resize(group, (big[0].shape[1],) * 2), big[0]]))
    cv2.imwrite(str(root / "blurred.png"), cv2.GaussianBlur(big[1], (0, 0), 9))
    cv2.imwrite(str(root / "small.png"), faces[2])
    cv2.imwrite(str(root / "blank.png"), big[3] * 0 + 128)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shutil.copy(sorted((SFEW / "happy").iterdir())[0], root / "frame.png")
    return root


def test_filters_and_drop_reasons_on_real_faces(tmp_path: Path) -> None:
    photos = _photo_folder(tmp_path / "photos")
    rep = extract_faces(photos, tmp_path / "a", ExtractOptions(min_face=200, min_sharpness=150))
    state = json.loads((tmp_path / "a" / "faces.json").read_text())
    by_name = {Path(r["file"]).name: r for r in state["photos"].values()}
    reasons = {n: sorted({d["reason"] for d in r["dropped"]}) for n, r in by_name.items()}
    assert reasons["broken.jpg"] == ["unreadable"] and reasons["blank.png"] == ["no_face"]
    (blurred,) = by_name["blurred.png"]["dropped"]  # still found, but its crop's Laplacian variance is low
    assert blurred["reason"] == "blurry" and not by_name["blurred.png"]["faces"]
    assert by_name["group.png"]["faces"][0]["sharpness"] > 100
    assert "too_small" in reasons["small.png"] and not by_name["small.png"]["faces"]
    # the group photo: four small faces and one large one; the large one is kept, the others are too small
    assert len(by_name["group.png"]["faces"]) == 1 and by_name["group.png"]["faces"][0]["box"][2] >= 200
    assert "too_small" in reasons["group.png"] and "too_small" in reasons["frame.png"]
    assert rep["dropped"]["unreadable"] == 1 and not (tmp_path / "a" / "tags.csv").exists()
    lost = {"blurry": 1, "no_face": 1, "too_small": 2, "unreadable": 1}  # every photo but the group lost its face
    assert rep["photos_without_a_face_by_reason"] == lost and rep["photos_with_a_face"] == 1
    many = extract_faces(photos, tmp_path / "all", ExtractOptions(min_face=20, multiple="all"))
    one = extract_faces(photos, tmp_path / "largest", ExtractOptions(min_face=20))
    none = extract_faces(photos, tmp_path / "drop", ExtractOptions(min_face=20, multiple="drop"))
    group = {k: json.loads((tmp_path / k / "faces.json").read_text()) for k in ("all", "largest", "drop")}
    counts = {
        k: [len(r["faces"]) for r in v["photos"].values() if r["file"].endswith("group.png")] for k, v in group.items()
    }
    assert counts["all"][0] >= 3 and counts["largest"] == [1] and counts["drop"] == [0]
    assert many["faces_kept"] - one["faces_kept"] == counts["all"][0] - 1 == one["dropped"]["not_largest"]
    assert none["dropped"]["several_faces"] == counts["all"][0]


def test_rerun_continues_and_an_interrupted_run_matches_a_whole_one(raw: Path, tmp_path: Path) -> None:
    whole = extract_faces(raw, tmp_path / "whole")
    calls = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_faces(raw, tmp_path / "cut", on_progress=stop_after_two)
    assert len(json.loads((tmp_path / "cut" / "faces.json").read_text())["photos"]) == 2
    (tmp_path / "cut" / "faces" / "ffffffffffffffffffff_0.png").write_bytes(b"written after the last record")
    calls.clear()
    resumed = extract_faces(raw, tmp_path / "cut", on_progress=lambda d, t: calls.append(d))
    assert calls == [3, 4, 5] and resumed == whole
    assert sorted(p.name for p in (tmp_path / "cut" / "faces").iterdir()) == sorted(
        p.name for p in (tmp_path / "whole" / "faces").iterdir()
    )
    with pytest.raises(InputError, match="other options"):
        extract_faces(raw, tmp_path / "cut", ExtractOptions(size=48))
    with pytest.raises(InputError, match="--multiple"):
        ExtractOptions(multiple="biggest").check()
    with pytest.raises(InputError, match="inside the input"):
        extract_faces(raw, raw / "faces")
