"""Training sources on real FER2013 files: folder/CSV sources, duplicates, split assignment, pixel loading."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import FER, fer_files, padded_photo

from ferkit.errors import InputError
from ferkit.faces.align import resize_crop
from ferkit.media.images import read_image
from ferkit.training.samples import Sample
from ferkit.training.sources import (
    assign_splits,
    drop_duplicates,
    fer2013_csv_source,
    find_duplicates,
    folder_source,
    group_from_name,
    labels_csv_source,
    load_many,
    load_pixels,
    sample_digest,
)


@pytest.fixture(scope="session")
def fer_samples() -> list[Sample]:
    return folder_source(FER, "fer2013")


def test_fer2013_folder_and_duplicates(fer_samples: list[Sample]) -> None:
    assert Counter(s.split for s in fer_samples) == {"train": 28709, "test": 7178}
    first = fer_samples[0]
    assert first.key == f"fer2013:test/angry/{first.path.name}" and first.raw_label == "angry"
    assert len({s.key for s in fer_samples}) == len(fer_samples)
    report = find_duplicates(fer_samples)
    summary = report.summary()
    print(summary)
    # 1,236 redundant copies (group size − 1 summed) in 1,035 groups; 2,271 train files sit in such groups.
    assert summary["within"]["train"] == {"groups": 1035, "redundant_copies": 1236}
    assert summary["within"]["test"] == {"groups": 81, "redundant_copies": 86}
    # 531 byte-identical groups span train and test, holding 703 train files.
    assert summary["cross_split_groups"] == 531
    assert summary["train_copies_of_eval"] == 703
    assert all(len(g) >= 2 and set(g) == {"train", "test"} for g in report.across)
    kept, counts = drop_duplicates(fer_samples, report)
    print(counts)
    # train repeats are counted after the eval copies are gone: 1,064 of the 1,236 redundant copies remain
    assert counts == {"train_copies_of_eval": 703, "train_repeats": 1064}
    assert summary["label_conflict_groups"] == 57  # identical images under different class folders
    assert len(kept) == len(fer_samples) - counts["train_copies_of_eval"] - counts["train_repeats"]
    again = find_duplicates([s for s in kept if s.split == "train"]).summary()
    assert again["within"] == {} and again["cross_split_groups"] == 0


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for p in files:
        shutil.copy(p, folder / p.name)


def test_folder_layouts(tmp_path: Path) -> None:
    split_root = tmp_path / "split"
    _copy(fer_files("train", 2, ["happy"]), split_root / "Training" / "happy")
    _copy(fer_files("test", 2, ["sad"]), split_root / "PublicTest" / "sad")
    _copy(fer_files("test", 1, ["angry"]), split_root / "test" / "angry")
    (split_root / "test" / "fear").mkdir()
    (split_root / "extras").mkdir()
    report: dict[str, list[str]] = {}
    samples = folder_source(split_root, "mine", report=report)
    assert [(s.raw_label, s.split) for s in samples] == [  # sorted by path: PublicTest < Training < test
        ("sad", "validation"), ("sad", "validation"), ("happy", "train"), ("happy", "train"), ("angry", "test"),
    ]  # fmt: skip
    assert samples[0].key.startswith("mine:PublicTest/sad/")
    assert report["empty_class_folders"] == [f"{split_root / 'test' / 'fear'}: class folder holds no images"]
    assert "extras" in report["ignored_folders"][0]
    assert folder_source(split_root, "mine") == samples  # deterministic

    flat = tmp_path / "flat"
    _copy(fer_files("test", 2, ["fear", "happy"]), flat)  # misuse: images directly in root are not classes
    with pytest.raises(InputError, match="no class folders"):
        folder_source(flat, "x")
    _copy(fer_files("test", 2, ["fear"]), flat / "Fear")
    (flat / "Empty").mkdir()
    samples = folder_source(flat, "x", group_pattern=r"_(?P<group>\d)\d*\.jpg$")
    assert [s.raw_label for s in samples] == ["Fear", "Fear"] and {s.split for s in samples} == {None}
    assert all(s.group is not None and s.group.isdigit() for s in samples)
    with pytest.raises(InputError, match="not found"):
        folder_source(tmp_path / "nope", "x")
    with pytest.raises(InputError, match="no images"):
        folder_source(_empty_tree(tmp_path), "x")


def _empty_tree(tmp_path: Path) -> Path:
    (tmp_path / "empty" / "happy").mkdir(parents=True)
    return tmp_path / "empty"


def test_group_from_name() -> None:
    assert group_from_name("S010_004_00000012.png", r"^(S\d+)_") == "S010"
    assert group_from_name("KA.AN1.39.tiff", r"^(?P<x>\w)(?P<group>[A-Z])\.") == "A"
    assert group_from_name("nothing.png", r"^(S\d+)_") is None
    with pytest.raises(InputError, match="capture group"):
        group_from_name("S010.png", r"S\d+")


def test_fer2013_csv_source(tmp_path: Path) -> None:
    files = fer_files("test", 1, ["angry", "happy", "neutral"])
    grays = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files]
    path = tmp_path / "fer2013.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for emotion, g, usage in zip([0, 3, 6], grays, ["Training", "PublicTest", "PrivateTest"], strict=True):
            w.writerow([emotion, " ".join(map(str, g.ravel())), usage])
        w.writerow([3, " ".join(["1"] * 2303), "Training"])  # one pixel short
        w.writerow([9, " ".join(["1"] * 2304), "Training"])  # emotion out of range
        w.writerow([2, "a b c", "Training"])  # not integers
    report: dict[str, list[str]] = {}
    samples = fer2013_csv_source(path, "fercsv", report=report)
    assert [(s.key, s.raw_label, s.split) for s in samples] == [
        ("fercsv:row 2", "angry", "train"),
        ("fercsv:row 3", "happy", "validation"),
        ("fercsv:row 4", "neutral", "test"),
    ]
    for s, g in zip(samples, grays, strict=True):
        assert s.pixels.dtype == np.uint8 and np.array_equal(s.pixels, g)
        assert np.array_equal(load_pixels(s, 48, "gray"), g)
    assert len(report["bad_rows"]) == 3 and "row 5" in report["bad_rows"][0]
    assert sample_digest(samples[0]) != sample_digest(samples[1])
    bad = tmp_path / "bad.csv"
    bad.write_text("label,pixels\n0,1 2 3\n")
    with pytest.raises(InputError, match=r"bad.csv: column 'emotion' missing"):
        fer2013_csv_source(bad, "x")


def test_labels_csv_source(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    _copy(fer_files("test", 2, ["happy"]), folder)
    names = sorted(p.name for p in folder.iterdir())
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,label,subject,part\n{names[0]},Joy,s1,train\n{names[1]},joy,s2,\ngone.jpg,sad,s3,test\n")
    report: dict[str, list[str]] = {}
    samples = labels_csv_source(folder, labels, "lab", group_column="subject", split_column="part", report=report)
    assert [(s.key, s.raw_label, s.group, s.split) for s in samples] == [
        (f"lab:{names[0]}", "Joy", "s1", "train"), (f"lab:{names[1]}", "joy", "s2", None),
    ]  # fmt: skip
    assert len(report["missing_files"]) == 1 and "gone.jpg" in report["missing_files"][0]
    with pytest.raises(InputError, match=r"labels.csv: column 'emotion' missing"):
        labels_csv_source(folder, labels, "lab", label_column="emotion")


def test_assign_splits_grouped_and_stratified() -> None:
    classes = ["a", "b", "c", "d"]
    names = [f"S{subj:03d}_{i:02d}.png" for subj in range(80) for i in range(10)]
    grouped = [
        Sample(f"g:{n}", classes[(k + k // 10) % 4], "g", group=group_from_name(n, r"^(S\d+)_"))
        for k, n in enumerate(names)
    ]
    grouped[0] = Sample(grouped[0].key, "a", "g", group="S000", split="test")  # S000's others must join test
    out = assign_splits(grouped, 0.2, seed=3, test_fraction=0.1)
    assert out == assign_splits(grouped, 0.2, seed=3, test_fraction=0.1)
    assert out != assign_splits(grouped, 0.2, seed=4, test_fraction=0.1)
    by_group: dict[str, set[str]] = {}
    for s in out:
        by_group.setdefault(s.group, set()).add(s.split)
    assert all(len(v) == 1 for v in by_group.values())
    assert by_group["S000"] == {"test"}
    share = Counter(s.split for s in out)
    assert abs(share["validation"] / len(out) - 0.2) < 0.04 and abs(share["test"] / len(out) - 0.1) < 0.04

    mixed = grouped[:300] + [Sample(f"u:{i}", classes[i % 4], "u") for i in range(300)]
    out = assign_splits(mixed, 0.2, seed=1)
    assert {s.group for s in out if s.split == "validation"}.isdisjoint(
        {s.group for s in out if s.split == "train"} - {None}
    )
    assert 40 <= sum(s.split == "validation" and s.group is None for s in out) <= 80

    plain = [Sample(f"p:{i}", classes[i % 4] if i % 10 else "rare", "p") for i in range(1000)]
    plain[5] = Sample("p:5", "b", "p", split="validation")
    out = assign_splits(plain, 0.25, seed=0)
    assert out[5].split == "validation" and out[5] is plain[5]
    assert all(s.split in ("train", "validation") for s in out)
    val = Counter(s.raw_label for s in out if s.split == "validation")
    total = Counter(s.raw_label for s in plain)
    assert all(abs(val[c] / total[c] - 0.25) < 0.02 for c in total)
    mapped = ["x" if s.raw_label in ("a", "b") else "y" for s in plain]
    out = assign_splits(plain, 0.25, seed=0, labels=mapped)
    val = Counter(m for m, s in zip(mapped, out, strict=True) if s.split == "validation")
    assert abs(val["x"] / mapped.count("x") - 0.25) < 0.01


def test_load_pixels_crop_and_corrupt(tmp_path: Path) -> None:
    src = fer_files("test", 1, ["surprise"])[0]
    sample = Sample("t:1", "surprise", "t", path=src)
    rgb = read_image(src)
    assert np.array_equal(load_pixels(sample, 64, "gray"), resize_crop(rgb, 64, "gray"))
    assert np.array_equal(load_pixels(sample, 64, "rgb"), resize_crop(rgb, 64, "rgb"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    bad = Sample("t:2", "surprise", "t", path=broken)
    assert load_pixels(bad, 64, "gray") is None
    assert load_pixels(Sample("t:3", "x", "t", path=tmp_path / "missing.jpg"), 64, "gray") is None
    arr, idx, failed = load_many([sample, bad, sample], 64, "rgb")
    assert arr.shape == (2, 64, 64, 3) and arr.dtype == np.uint8 and idx == [0, 2] and failed == ["t:2"]
    arr, idx, failed = load_many([bad], 48, "gray")
    assert arr.shape == (0, 48, 48) and idx == [] and failed == ["t:2"]


def test_load_pixels_detect(tmp_path: Path, blazeface) -> None:
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(padded_photo(fer_files("test", 4, ["happy"])[3]), cv2.COLOR_RGB2BGR))
    face = load_pixels(Sample("d:1", "happy", "d", path=photo), 64, "gray", align="detect", detector=blazeface)
    assert face is not None and face.shape == (64, 64) and face.dtype == np.uint8
    blank = Sample("d:2", "happy", "d", pixels=np.full((192, 192), 128, np.uint8))
    assert load_pixels(blank, 64, "rgb", align="detect", detector=blazeface) is None
    with pytest.raises(InputError, match="unknown align"):
        load_pixels(blank, 64, "gray", align="warp")
