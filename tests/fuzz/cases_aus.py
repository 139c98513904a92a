"""``analyze --aus``: malformed hard-case rules files (one line naming the rule and the key), ``--rules`` without
``--aus``, faces the landmarker cannot fit (a record with ``aus: null`` and a reason, never a crash), and hostile
images through the AU path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .inputs import copy_crop
from .registry import FuzzCase, Outcome, read_jsonl, register

BASE = ["analyze", "x.jpg", "--crops", "--no-plots", "--aus", "-o", "out.jsonl"]
GOOD_HEAD = '[speech_action]\nwhen = "speaking and AU04"\n'
RULES = {
    "unknown-au": ('[[rules]]\ncode = "x"\nwhen = "AU99"\n', r"rule 'x': when: unknown name 'AU99'"),
    "syntax": ('[[rules]]\ncode = "x"\nwhen = "AU12 and"\n', r"rule 'x': when: not a valid condition"),
    "code-injection": ("[[rules]]\ncode = \"x\"\nwhen = \"__import__('os').system('true')\"\n", r"rule 'x': when"),
    "attribute": ('[[rules]]\ncode = "x"\nwhen = "AU12.real"\n', r"rule 'x': when: only AU names"),
    "huge-number": ('[[rules]]\ncode = "x"\nwhen = "i_AU12 > 1e999"\n', r"rule 'x': when: numbers must be finite"),
    "negative-duration": ('[[rules]]\ncode = "x"\nwhen = "AU12"\nmin_duration = -1\n', r"rule 'x': min_duration"),
    "nan-duration": ('[[rules]]\ncode = "x"\nwhen = "AU12"\nmin_duration = nan\n', r"rule 'x': min_duration"),
    "threshold-type": ('[[rules]]\ncode = "x"\nwhen = "AU12"\nthreshold = "high"\n', r"rule 'x': threshold"),
    "threshold-range": ('[[rules]]\ncode = "x"\nwhen = "AU12"\nthreshold = 2\n', r"rule 'x': threshold"),
    "unknown-key": ('[[rules]]\ncode = "x"\nwhen = "AU12"\nsides = "L"\n', r"unknown key 'sides'"),
    "bad-code": ('[[rules]]\ncode = "../x"\nwhen = "AU12"\n', r"code must be lower_snake_case"),
    "code-type": ("[[rules]]\ncode = 3\nwhen = 'AU12'\n", r"code: must be a non-empty string"),
    "duplicate": ('[[rules]]\ncode = "x"\nwhen = "AU12"\n[[rules]]\ncode = "x"\nwhen = "AU06"\n', r"code used twice"),
    "when-missing": ('[[rules]]\ncode = "x"\n', r"rule 'x': when: must be a non-empty string"),
    "rules-not-list": ('rules = "AU12"\n', r"rules: must be a non-empty list"),
    "rule-not-table": ("rules = [1, 2]\n", r"rules\[0\]: must be a table"),
}


def _rules(text: str, head: str = GOOD_HEAD):
    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        top = text.startswith("rules =")  # a top-level key must come before the first table
        (tmp / "rules.toml").write_text(text + head if top else head + text)

    return setup


_OTHER = {
    "no-speech-action": (_rules('[[rules]]\ncode = "x"\nwhen = "AU12"\n', head=""), r"speech_action: missing"),
    "not-toml": (_rules("[[rules\n", head=""), r"not a readable TOML"),
    "not-utf8": (lambda t: (copy_crop(t / "x.jpg"), (t / "rules.toml").write_bytes(b"\xff\xfe\x00rules")), r"TOML"),
    "missing": (lambda t: copy_crop(t / "x.jpg"), r"rules file not found"),
    "directory": (lambda t: (copy_crop(t / "x.jpg"), (t / "rules.toml").mkdir()), r"rules"),
}
_CASES = {cid: (_rules(text), match) for cid, (text, match) in RULES.items()} | _OTHER
for cid, (setup, match) in _CASES.items():
    register(
        FuzzCase(
            f"analyze/aus-rules-{cid}",
            "analyze",
            "aus",
            [*BASE, "--rules", "rules.toml"],
            setup=setup,
            error_match=match,
        )
    )

register(
    FuzzCase(
        "analyze/rules-without-aus",
        "analyze",
        "aus",
        ["analyze", "x.jpg", "--crops", "--no-plots", "--rules", "rules.toml", "-o", "out.jsonl"],
        setup=_rules('[[rules]]\ncode = "x"\nwhen = "AU12"\n'),
        error_match=r"--rules applies to --aus",
    )
)


def _no_fit(outcome: Outcome) -> None:
    recs = read_jsonl(outcome.tmp / "out.jsonl")
    assert len(recs) == 1 and recs[0]["aus"] is None and recs[0]["aus_reason"], json.dumps(recs)
    assert recs[0]["emotion"] is not None  # the emotion model still scores it


def _gray(tmp: Path) -> None:
    cv2.imwrite(str(tmp / "x.jpg"), np.full((48, 48), 128, np.uint8))


register(
    FuzzCase(
        "analyze/aus-no-face-in-crop",
        "analyze",
        "aus",
        BASE,
        setup=_gray,
        expect="ok",
        check=_no_fit,
        note="a crop the landmarker cannot fit: a record with aus null and a reason",
    )
)


# --- the ferkit-au model folder (emotion from AUs): damaged weights files, and a face it cannot fit -----------------
AU_ANALYZE = ["analyze", "x.jpg", "--crops", "--no-plots", "--model", "m", "-o", "out.jsonl"]


def _au_folder(edit: Callable[[dict], object] | None = None, flip_byte: bool = False) -> Callable[[Path], None]:
    """Setup: the crop plus a copy of ferkit-au in ``m``; ``edit`` changes the weights (the card's hash follows),
    ``flip_byte`` alters the weights file behind the card's back."""

    def setup(tmp: Path) -> None:
        import hashlib
        import shutil

        from ferkit.models.loading import MODEL_FOLDERS

        copy_crop(tmp / "x.jpg")
        shutil.copytree(MODEL_FOLDERS["ferkit-au"], tmp / "m")
        weights, card = tmp / "m" / "au_emotion.json", json.loads((tmp / "m" / "card.json").read_text())
        data = weights.read_bytes()
        if edit is not None:
            doc = json.loads(data)
            edit(doc)
            data = json.dumps(doc, allow_nan=True).encode()
            card["sha256"] = hashlib.sha256(data).hexdigest()
        if flip_byte:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        weights.write_bytes(data)
        (tmp / "m" / "card.json").write_text(json.dumps(card))

    return setup


def _set(key: str, value: object) -> Callable[[dict], object]:
    return lambda d: d.__setitem__(key, value)


_AU_MODEL = {
    "weights-altered": (_au_folder(flip_byte=True), r"SHA-256 mismatch"),
    "weights-nan": (_au_folder(lambda d: d["layers"][0]["bias"].__setitem__(0, float("nan"))), r"non-finite"),
    "weights-short-layer": (_au_folder(lambda d: d["layers"][0]["weight"].pop()), r"layers\[0\]\.weight has shape"),
    "weights-no-layers": (_au_folder(_set("layers", [])), r"layers must be a list"),
    "weights-bad-fallback": (_au_folder(_set("fallback", [1, 0, 0, 0, 0, 0, 0])), r"fallback must be positive"),
    "weights-unknown-input": (_au_folder(_set("inputs", ["aus", "pixels"])), r"inputs must be distinct names"),
    "weights-other-heads": (_au_folder(_set("au_heads_sha256", "0" * 64)), r"trained on AU heads"),
    "weights-not-object": (_au_folder(lambda d: d.clear()), r"format must be"),
}
for cid, (setup, match) in _AU_MODEL.items():
    register(FuzzCase(f"analyze/au-model-{cid}", "analyze", "models", AU_ANALYZE, setup=setup, error_match=match))


def _fallback(outcome: Outcome) -> None:
    from ferkit.models.loading import MODEL_FOLDERS

    (rec,) = read_jsonl(outcome.tmp / "out.jsonl")
    fallback = json.loads((MODEL_FOLDERS["ferkit-au"] / "au_emotion.json").read_text())["fallback"]
    assert np.allclose(list(rec["probabilities"].values()), fallback, atol=1e-4), json.dumps(rec)
    assert rec["model"] == "ferkit-au" and rec["emotion"] is not None


register(
    FuzzCase(
        "analyze/au-model-no-face-in-crop", "analyze", "models",
        ["analyze", "x.jpg", "--crops", "--no-plots", "--model", "ferkit-au", "-o", "out.jsonl"],
        setup=_gray, expect="ok", check=_fallback,
        note="ferkit-au on a crop the landmarker cannot fit: the documented fallback distribution, no error",
    )
)  # fmt: skip
