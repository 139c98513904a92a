"""Label taxonomies (shipped TOML files, user files, label mapping) and keyword weak supervision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CLASSES, FER, fer_files

from ferkit.errors import InputError
from ferkit.labels.folders import BASIC_CLASSES, CLASS_ALIASES
from ferkit.labels.taxonomy import TAXONOMIES, Taxonomy, UnknownLabelError, load_taxonomy, map_labels
from ferkit.training.weak import WeakReport, label_by_keywords, load_rules, load_tags, weak_tag_source

HARD_CASES = [
    "anger_ambiguous",
    "anger_blends",
    "disgust_anger",
    "boredom",
    "smugness",
    "simulating",
    "masking",
    "smile_fake",
    "fear_other",
    "questioning_other",
    "sadness_other",
    "surprise_mild",
    "disbelief (akin to questioning)",
]


def test_shipped_taxonomies_load() -> None:
    assert set(TAXONOMIES) == {
        "basic7",
        "basic6",
        "basic5",
        "extended",
        "extended12",
        "clear_vs_hard",
        "expressive_vs_neutral",
    }
    for name in TAXONOMIES:
        tax = load_taxonomy(name)
        assert tax.name == name and tax.description
        assert all(v in tax.classes for v in tax.aliases.values())
        assert (len(tax.classes) == 2) == (tax.kind == "binary")
    assert load_taxonomy("basic7").classes == tuple(BASIC_CLASSES)


def test_basic7_maps_fer2013_folders_and_aliases() -> None:
    tax = load_taxonomy("basic7")
    folders = sorted(p.name for p in (FER / "train").iterdir() if p.is_dir())
    assert folders == CLASSES
    assert [tax.map(f) for f in folders] == folders
    assert [tax.index(f) for f in folders] == list(range(7))
    assert tax.map("Anger") == "angry" and tax.map("sadness") == "sad" and tax.map("Happiness") == "happy"
    assert tax.map("  SURPRISED ") == "surprise" and tax.map("contempt") is None  # CK+/AffectNet contempt: dropped
    # datasets.CLASS_ALIASES (evaluation's folder names) comes from the taxonomy files and agrees with basic7
    assert {k: tax.map(k) for k, v in CLASS_ALIASES.items() if v != "contempt"} == {
        k: v for k, v in CLASS_ALIASES.items() if v != "contempt"
    }
    assert CLASS_ALIASES["anger"] == "angry" and CLASS_ALIASES["contemptuous"] == "contempt"


def test_basic6_and_basic5_ignore() -> None:
    b6, b5 = load_taxonomy("basic6"), load_taxonomy("basic5")
    assert "neutral" not in b6.classes and b6.map("neutral") is None and b6.map("Neutrality") is None
    assert b6.map("Disgusted") == "disgust"
    assert b5.classes == ("angry", "fear", "happy", "sad", "surprise")
    assert b5.map("disgust") is None and b5.map("disgusted") is None and b5.map("neutral") is None
    assert b5.map("contempt") is None and b5.map("Scared") == "fear"


def test_extended_and_binary_taxonomies() -> None:
    ext, cvh, evn = (load_taxonomy(n) for n in ("extended", "clear_vs_hard", "expressive_vs_neutral"))
    assert ext.classes[:7] == tuple(BASIC_CLASSES) and ext.classes[7:] == ("contempt", "hard_case", "speech_action")
    for folder in HARD_CASES:
        assert ext.map(folder) == "hard_case", folder
        assert cvh.map(folder) == "unclear", folder
    assert ext.map("Smile Fake") == "hard_case" and ext.map("surprise-mild") == "hard_case"
    assert ext.map("contempt") == "contempt" and ext.map("talking") == "speech_action"
    assert cvh.kind == evn.kind == "binary"
    assert cvh.map("smile_fake") == "unclear" and cvh.map("speech") == "unclear"
    assert cvh.map("happy") == "clear_emotion" and cvh.map("Anger") == "clear_emotion" and cvh.map("contempt")
    assert evn.classes == ("expressive", "neutral")
    assert (
        evn.map("surprise") == "expressive" and evn.map("neutral") == "neutral" and evn.map("sadness") == "expressive"
    )
    assert [evn.map(c) for c in CLASSES] == ["neutral" if c == "neutral" else "expressive" for c in CLASSES]


def test_unknown_labels() -> None:
    tax = load_taxonomy("basic7")
    with pytest.raises(UnknownLabelError, match=r"'bewildered'.*basic7.*angry, disgust") as err:
        tax.map("bewildered")
    assert isinstance(err.value, InputError) and err.value.label == "bewildered"
    with pytest.raises(UnknownLabelError):
        tax.index("anger")  # an alias, not a class
    labels, report = map_labels(["happy", "Anger", "bewildered", "contempt", "anger", "bewildered"], tax)
    assert labels == ["happy", "angry", None, None, "angry", None]
    assert report.unknown == {"bewildered": 2} and report.ignored == {"contempt": 1}
    assert report.mapped["angry"] == {"Anger": 1, "anger": 1} and report.counts["happy"] == 1
    assert report.counts["neutral"] == 0
    assert "bewildered 2" in report.summary() and "angry: 2" in report.summary()


def test_user_taxonomy_files(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text(
        'extends = "basic7"\nclasses = ["positive", "other"]\n[aliases]\nhappy = "positive"\n'
        'angry = "other"\ndisgust = "other"\nfear = "other"\nneutral = "other"\nsad = "other"\n'
        'surprise = "other"\n'
    )
    tax = load_taxonomy(good)
    assert tax.name == "mine" and tax.map("Joy") == "positive" and tax.map("Sadness") == "other"

    def fails(text: str, *words: str) -> None:
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(InputError) as err:
            load_taxonomy(path)
        assert str(path) in str(err.value) and all(w in str(err.value) for w in words), str(err.value)

    fails('clases = ["a", "b"]\n', "clases", "did you mean 'classes'")
    fails('classes = ["a", "b"]\n[aliases]\nx = "c"\n', "aliases.x", "'c'")
    fails('name = "x"\n', "classes", "missing")
    fails('kind = "binary"\nclasses = ["a", "b", "c"]\n', "classes", "exactly 2")
    fails('extends = "basic9"\nclasses = ["a"]\n', "extends", "basic9")
    fails('extends = "basic7"\nclasses = ["happy", "other"]\n', "extends", "angry")  # parent classes left unmapped
    fails('classes = ["Happy"]\n', "classes", "lower case")
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nclasses = ["x"]\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nclasses = ["x"]\n')
    with pytest.raises(InputError, match="cycle"):
        load_taxonomy(tmp_path / "a.toml")
    with pytest.raises(InputError, match="unknown taxonomy"):
        load_taxonomy("no_such_taxonomy")
    with pytest.raises(InputError, match="exactly 2"):
        Taxonomy("t", ("a", "b", "c"), {}, frozenset(), kind="binary")


RULES = {"happy": [["happy", "smiling", "joyful"], ["laughing"]], "sad": [["sad", "crying"]], "angry": [["angry"]]}


def test_keyword_rules() -> None:
    rules = load_rules(RULES)
    assert rules["happy"] == [frozenset({"happy", "smiling", "joyful"}), frozenset({"laughing"})]
    assert label_by_keywords(["Happy", "smiling", "joyful", "woman"], rules) == ("happy", ["happy"])
    assert label_by_keywords(["happy", "smiling"], rules) == (None, [])  # one keyword of the set missing
    assert label_by_keywords([" LAUGHING "], RULES) == ("happy", ["happy"])
    assert label_by_keywords(["laughing", "angry"], rules) == (None, ["happy", "angry"])
    with pytest.raises(InputError, match="happy"):
        load_rules({"happy": ["happy", "smiling"]})  # a flat list is ambiguous: keyword sets must be lists
    with pytest.raises(InputError, match="joyous"):
        load_rules({"taxonomy": "basic7", "joyous": [["joy"]]})
    assert load_rules({"taxonomy": "basic5", "happy": [["joy"]]}) == {"happy": [frozenset({"joy"})]}


def test_tag_files(tmp_path: Path) -> None:
    csv_file = tmp_path / "tags.csv"
    csv_file.write_text(
        'file,tags\na.jpg,"Happy; Smiling|joyful"\nb.jpg,"sad, crying"\na.jpg,woman\nc.jpg,angry,frowning\n'
    )
    assert load_tags(csv_file) == {
        "a.jpg": ["happy", "smiling", "joyful", "woman"],
        "b.jpg": ["sad", "crying"],
        "c.jpg": ["angry", "frowning"],
    }
    for data in ({"a.jpg": ["Happy ", "smiling"]}, [{"file": "a.jpg", "tags": ["Happy ", "smiling"]}]):
        (tmp_path / "tags.json").write_text(json.dumps(data))
        assert load_tags(tmp_path / "tags.json") == {"a.jpg": ["happy", "smiling"]}
    (tmp_path / "bad.csv").write_text("name,keywords\na.jpg,happy\n")
    with pytest.raises(InputError, match="file,tags"):
        load_tags(tmp_path / "bad.csv")


def test_weak_tag_source(tmp_path: Path) -> None:
    folder = tmp_path / "stock"
    folder.mkdir()
    files = fer_files("test", 1, ["happy", "sad", "angry", "neutral"])
    for i, p in enumerate(files):
        shutil.copy(p, folder / f"img{i}.jpg")
    rows = {
        "img0.jpg": "happy;smiling;joyful;portrait",
        "img1.jpg": "sad|crying",
        "img2.jpg": "angry;laughing",  # conflict
        "img3.jpg": "calm;portrait",  # no rule matches
        "gone.jpg": "happy;smiling;joyful",  # missing file
    }
    tags = tmp_path / "tags.csv"
    tags.write_text("file,tags\n" + "".join(f"{f},{t}\n" for f, t in rows.items()))
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'taxonomy = "basic7"\nhappy = [["happy", "smiling", "joyful"], ["laughing"]]\n'
        'sad = [["sad", "crying"]]\nangry = [["angry"]]\n'
    )
    samples, report = weak_tag_source(folder, tags, rules, "stock")
    assert [(s.key, s.raw_label, s.source, s.path) for s in samples] == [
        ("stock:img0.jpg", "happy", "stock", folder / "img0.jpg"),
        ("stock:img1.jpg", "sad", "stock", folder / "img1.jpg"),
    ]
    assert all(s.path.read_bytes() == p.read_bytes() for s, p in zip(samples, files, strict=False))
    assert report.conflicts == [("img2.jpg", ["happy", "angry"])] and report.empty == ["img3.jpg"]
    assert report.missing == ["gone.jpg"]
    assert report.summary() == {
        "labelled": 2,
        "per_class": {"happy": 1, "sad": 1, "angry": 0},
        "conflicts": 1,
        "empty": 1,
        "missing": 1,
    }
    assert isinstance(report, WeakReport)
    assert [load_taxonomy("basic7").map(s.raw_label) for s in samples] == ["happy", "sad"]
