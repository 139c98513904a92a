"""Hostile model folders, model cards, calibration files, ONNX spec files and reliability reports: wrong types,
class lists that do not match the network, zero or negative std, NaN mean, weights files outside the folder,
missing integrity hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import bundled_gate_dir, bundled_model_dir
from .inputs import copy_crop, labelled_folder, model_folder
from .registry import FuzzCase, Outcome, expect_records, register

NAN, INF = float("nan"), float("inf")
SHA = json.loads((bundled_model_dir() / "card.json").read_text())["sha256"]
ANALYZE = ["analyze", "x.jpg", "--crops", "--no-plots", "-o", "out.jsonl"]


def _crop_and(name: str, data: str | bytes):
    """Setup: the crop x.jpg plus the file ``name`` holding ``data``."""

    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        (tmp / name).write_bytes(data if isinstance(data, bytes) else data.encode())

    return setup


def _seven_probs(o: Outcome) -> None:
    """The record's probabilities: the 7 classes of the network, finite, summing to 1."""
    expect_records("out.jsonl", n=1)(o)
    from .registry import read_jsonl

    (rec,) = read_jsonl(o.tmp / "out.jsonl")
    assert len(rec["probabilities"]) == 7, f"{len(rec['probabilities'])} classes in the record"


def _card(cid: str, edit: dict | None = None, drop: tuple[str, ...] = (), expect: str = "usage_error",
          calibration: object = None, **kw: object) -> None:  # fmt: skip
    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        model_folder(tmp / "m", bundled_model_dir(), edit, drop, calibration)

    register(
        FuzzCase(
            f"analyze/card-{cid}", "analyze", "models", [*ANALYZE, "--model", "m"], setup=setup, expect=expect,  # type: ignore[arg-type]
            check=kw.pop("check", _seven_probs), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


# --- card.json --------------------------------------------------------------------------------------------------------
_card("valid-copy", expect="ok")
_card("classes-string", {"classes": "angry disgust fear happy neutral sad surprise"})
_card("classes-three", {"classes": ["angry", "happy", "sad"]}, note="the network has 7 outputs")
_card("classes-eight", {"classes": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt"]})
_card("classes-duplicate", {"classes": ["angry", "happy", "fear", "happy", "neutral", "sad", "surprise"]})
_card("classes-ints", {"classes": [0, 1, 2, 3, 4, 5, 6]})
_card("classes-null", {"classes": None})
_card("classes-empty", {"classes": []})
_card("classes-nested", {"classes": [["angry"], "disgust", "fear", "happy", "neutral", "sad", "surprise"]})
_card("mean-nan", {"mean": NAN})
_card("mean-inf", {"mean": INF})
_card("mean-string", {"mean": "0.5"})
_card("mean-null", {"mean": None})
_card("mean-list", {"mean": [0.5]}, expect="either")
_card("std-zero", {"std": 0}, note="x / 0: every pixel inf or NaN")
_card("std-negative", {"std": -0.5}, note="an inverted image")
_card("std-nan", {"std": NAN})
_card("std-tiny", {"std": 1e-300})
_card("std-string", {"std": "0.5"})
_card("input-size-string", {"input_size": "48"})
_card("input-size-zero", {"input_size": 0})
_card("input-size-huge", {"input_size": 10**12})
_card("input-size-float", {"input_size": 48.0}, expect="either")
_card("input-size-bool", {"input_size": True})
_card("channels-unknown", {"channels": "cmyk"})
_card("channels-rgb-for-gray-net", {"channels": "rgb"})
_card("channels-null", {"channels": None})
_card("sha256-wrong", {"sha256": "0" * 64})
_card("sha256-int", {"sha256": 12345})
_card("sha256-null", {"sha256": None})
_card("sha256-uppercase", {"sha256": SHA.upper()}, expect="either")
_card("sha256-missing", drop=("sha256",))
_card("name-missing", drop=("name",))
_card("name-null", {"name": None})
_card("name-list", {"name": ["a", "b"]})
_card("onnx-file-int", {"onnx_file": 5})
_card("onnx-file-empty", {"onnx_file": ""})
_card("onnx-file-null", {"onnx_file": None})
_card("onnx-file-dev-zero", {"onnx_file": "/dev/zero"})
_card("onnx-file-proc-mem", {"onnx_file": "/proc/self/mem"}, timeout=20)
_card("onnx-file-etc-passwd", {"onnx_file": "/etc/passwd"}, note="an absolute path outside the folder")


def _card_outside(tmp: Path) -> None:
    """onnx_file names the real weights through ../: the hash matches, the folder's own file is not used."""
    copy_crop(tmp / "x.jpg")
    model_folder(tmp / "m", bundled_model_dir(), {"onnx_file": "../weights/model.onnx"}, calibration=None)
    (tmp / "m" / "model.onnx").unlink()
    (tmp / "weights").mkdir()
    (tmp / "weights" / "model.onnx").symlink_to(bundled_model_dir() / "model.onnx")


register(
    FuzzCase(
        "analyze/card-onnx-file-outside-folder", "analyze", "models", [*ANALYZE, "--model", "m"],
        setup=_card_outside, note="weights loaded from outside the model folder",
    )
)  # fmt: skip


def _card_sparse(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")
    model_folder(tmp / "m", bundled_model_dir(), {"onnx_file": "../elsewhere/huge.bin"}, calibration=None)
    (tmp / "elsewhere").mkdir()
    with open(tmp / "elsewhere" / "huge.bin", "wb") as fh:
        fh.truncate(64 << 30)  # sparse: 64 GiB of zeros, no disk used


register(
    FuzzCase(
        "analyze/card-onnx-file-outside-huge", "analyze", "models", [*ANALYZE, "--model", "m"], setup=_card_sparse,
        timeout=6, subprocess=True,
        note="the file outside the folder is read in full (hashed) before it is refused",
    )
)  # fmt: skip


def _card_text(text: str | bytes):
    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        model_folder(tmp / "m", bundled_model_dir(), calibration=None)
        data = text.encode() if isinstance(text, str) else text
        (tmp / "m" / "card.json").write_bytes(data)

    return setup


for cid, text in [
    ("not-json", "{name: ferkit"),
    ("json-list", "[1, 2, 3]"),
    ("json-string", '"card"'),
    ("empty", ""),
    ("not-utf8", b'{"name": "f\xe9rkit"}'),
    ("deeply-nested", "[" * 100_000 + "]" * 100_000),
    ("huge-number", '{"name": "x", "classes": [], "input_size": 1' + "0" * 5000 + "}"),
]:
    register(FuzzCase(f"analyze/card-file-{cid}", "analyze", "models", [*ANALYZE, "--model", "m"],
                      setup=_card_text(text)))  # fmt: skip


def _no_card(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")
    model_folder(tmp / "m", bundled_model_dir(), calibration=None)
    (tmp / "m" / "card.json").unlink()


register(FuzzCase("analyze/card-missing", "analyze", "models", [*ANALYZE, "--model", "m"], setup=_no_card))


def _onnx_garbage(tmp: Path) -> None:
    import hashlib

    copy_crop(tmp / "x.jpg")
    junk = os.urandom(4096)
    model_folder(tmp / "m", bundled_model_dir(), {"sha256": hashlib.sha256(junk).hexdigest()}, calibration=None)
    (tmp / "m" / "model.onnx").unlink()
    (tmp / "m" / "model.onnx").write_bytes(junk)


register(FuzzCase("analyze/card-onnx-not-onnx", "analyze", "models", [*ANALYZE, "--model", "m"], setup=_onnx_garbage))


def _gate_as_emotion(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")
    model_folder(tmp / "m", bundled_gate_dir(), {"classes": ["angry", "disgust", "fear", "happy", "neutral", "sad",
                                                             "surprise"]}, calibration=None)  # fmt: skip


register(
    FuzzCase(
        "analyze/card-seven-classes-on-two-output-net", "analyze", "models", [*ANALYZE, "--model", "m"],
        setup=_gate_as_emotion, note="a 2-output network whose card lists 7 classes",
    )
)  # fmt: skip

# --- calibration.json (beside the model, and --calibration FILE) ------------------------------------------------------

GOOD_CAL = json.loads((bundled_model_dir() / "calibration.json").read_text())


def _cal_edit(**fields: object) -> dict:
    return {**GOOD_CAL, **fields}


for cid, cal in [
    ("bias-strings", _cal_edit(bias=["a"] * 7)),
    ("bias-nan", _cal_edit(bias=[NAN] * 7)),
    ("bias-huge", _cal_edit(bias=[1e308] * 7)),
    ("bias-short", _cal_edit(bias=[0.0] * 3)),
    ("bias-nested", _cal_edit(bias=[[0.0]] * 7)),
    ("bias-null", _cal_edit(bias=None)),
    ("temperature-zero", _cal_edit(temperature=0)),
    ("temperature-negative", _cal_edit(temperature=-1)),
    ("temperature-nan", _cal_edit(temperature=NAN)),
    ("temperature-string", _cal_edit(temperature="1")),
    ("temperature-tiny", _cal_edit(temperature=1e-300)),
    ("temperature-huge", _cal_edit(temperature=1e308)),
    ("classes-null", _cal_edit(classes=None)),
    ("classes-mismatch", _cal_edit(classes=["a", "b", "c", "d", "e", "f", "g"])),
    ("classes-reordered", _cal_edit(classes=list(reversed(GOOD_CAL["classes"])))),
    ("sha-other-model", _cal_edit(model_sha256="f" * 64)),
    ("sha-int", _cal_edit(model_sha256=7)),
    ("sha-null", _cal_edit(model_sha256=None)),
    ("unknown-key", _cal_edit(extra_key=1)),
    ("missing-bias", {k: v for k, v in GOOD_CAL.items() if k != "bias"}),
    ("json-list", [1, 2]),
    ("not-json", "{bias: [0]}"),
    ("empty", ""),
]:
    _card(f"calibration-{cid}", calibration=cal)
    register(
        FuzzCase(
            f"analyze/calibration-file-{cid}", "analyze", "models", [*ANALYZE, "--calibration", "cal.json"],
            setup=_crop_and("cal.json", cal if isinstance(cal, str) else json.dumps(cal, allow_nan=True)),
            check=_seven_probs,
        )
    )  # fmt: skip
register(
    FuzzCase(
        "analyze/calibration-file-not-utf8", "analyze", "models", [*ANALYZE, "--calibration", "cal.json"],
        setup=lambda t: (copy_crop(t / "x.jpg"), (t / "cal.json").write_bytes(b'{"bias": "\xff"}')),
    )
)  # fmt: skip
register(
    FuzzCase(
        "analyze/calibration-file-is-directory", "analyze", "models", [*ANALYZE, "--calibration", "cal.json"],
        setup=lambda t: (copy_crop(t / "x.jpg"), (t / "cal.json").mkdir()),
    )
)  # fmt: skip
register(
    FuzzCase(
        "evaluate/calibration-classes-null", "evaluate", "models", ["evaluate", "ds", "--crops", "--calibration",
                                                                      "cal.json"],
        setup=lambda t: (labelled_folder(t / "ds", 1, ["happy", "sad"]),
                         (t / "cal.json").write_text(json.dumps(_cal_edit(classes=None)))),
    )
)  # fmt: skip

# --- ONNX spec files --------------------------------------------------------------------------------------------------

SPEC = {
    "name": "spec-model", "onnx_file": "model.onnx", "input_size": 48, "channels": "gray", "mean": 0.5, "std": 0.5,
    "classes": ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
    "sha256": SHA,
}  # fmt: skip


def _spec(cid: str, edit: dict | None = None, drop: tuple[str, ...] = (), expect: str = "usage_error",
          command: str = "analyze", **kw: object) -> None:  # fmt: skip
    spec = {k: v for k, v in {**SPEC, **(edit or {})}.items() if k not in drop}

    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        (tmp / "s").mkdir()
        (tmp / "s" / "model.onnx").symlink_to(bundled_model_dir() / "model.onnx")
        (tmp / "s" / "spec.json").write_text(json.dumps(spec, allow_nan=True))

    register(
        FuzzCase(
            f"analyze/spec-{cid}", "analyze", "models", [*ANALYZE, "--model", "s/spec.json"], setup=setup,
            expect=expect, check=kw.pop("check", _seven_probs), **kw,  # type: ignore[arg-type]
        )
    )  # fmt: skip


_spec("valid", expect="ok")
_spec("sha256-missing", drop=("sha256",), note="a spec without a hash loads any file unchecked")
_spec("sha256-null", {"sha256": None})
_spec("sha256-wrong", {"sha256": "0" * 64})
_spec("sha256-int", {"sha256": 5})
_spec("mean-nan", {"mean": NAN})
_spec("mean-inf", {"mean": INF})
_spec("std-nan", {"std": NAN})
_spec("std-inf", {"std": INF})
_spec("std-negative", {"std": -0.5})
_spec("std-zero-list", {"std": [0.0]})
_spec("mean-bool", {"mean": True})
_spec("classes-three", {"classes": ["a", "b", "c"]})
_spec("classes-duplicate", {"classes": ["a", "a", "b", "c", "d", "e", "f"]})
_spec("class-map-drops-all", {"class_map": dict.fromkeys(SPEC["classes"])})
_spec("class-map-unknown", {"class_map": {"joy": "happy"}})
_spec("input-size-huge", {"input_size": 10**9})
_spec("layout-nhwc-on-nchw", {"layout": "nhwc"})
_spec("unknown-key", {"threshold": 0.5})
_spec("onnx-file-absolute-etc", {"onnx_file": "/etc/passwd", "sha256": None},
      note="a spec may point anywhere on the disk; the file is opened before being refused")  # fmt: skip
_spec("onnx-file-dotdot", {"onnx_file": "../../../../../../etc/hostname"})
_spec("onnx-file-proc-mem", {"onnx_file": "/proc/self/mem"}, timeout=20)
_spec("name-with-slash", {"name": "a/b"}, expect="either", check=lambda o: None)


def _spec_sparse(tmp: Path) -> None:
    copy_crop(tmp / "x.jpg")
    (tmp / "s").mkdir()
    (tmp / "elsewhere").mkdir()
    with open(tmp / "elsewhere" / "huge.bin", "wb") as fh:
        fh.truncate(64 << 30)
    (tmp / "s" / "spec.json").write_text(json.dumps({**SPEC, "onnx_file": "../elsewhere/huge.bin"}))


register(
    FuzzCase(
        "analyze/spec-onnx-file-outside-huge", "analyze", "models", [*ANALYZE, "--model", "s/spec.json"],
        setup=_spec_sparse, subprocess=True, timeout=6,
        note="a 64 GiB (sparse) file outside the spec's folder is hashed in full before the spec is refused",
    )
)  # fmt: skip

for cid, text in [("not-object", "[1]"), ("not-json", "{"), ("not-utf8", b'{"name": "\xff"}')]:
    register(
        FuzzCase(
            f"analyze/spec-file-{cid}", "analyze", "models", [*ANALYZE, "--model", "spec.json"],
            setup=_crop_and("spec.json", text),
        )
    )  # fmt: skip

# --- calibrate / evaluate with hostile model folders ------------------------------------------------------------------


def _cal_model(edit: dict):
    def setup(tmp: Path) -> None:
        labelled_folder(tmp / "ds", 2, ["happy", "sad", "neutral"])
        model_folder(tmp / "m", bundled_model_dir(), edit, calibration=None)

    return setup


register(
    FuzzCase(
        "calibrate/card-name-with-slash", "calibrate", "models",
        ["calibrate", "ds", "--crops", "--model", "m", "--method", "grid", "--trials", "5", "-o", "cal.json"],
        setup=_cal_model({"name": "team/model"}), expect="either", check=lambda o: None,
        note="the card name becomes part of the logits cache file name",
    )
)  # fmt: skip
register(
    FuzzCase(
        "calibrate/card-std-zero", "calibrate", "models",
        ["calibrate", "ds", "--crops", "--model", "m", "--method", "grid", "--trials", "5", "-o", "cal.json"],
        setup=_cal_model({"std": 0}),
    )
)  # fmt: skip
register(
    FuzzCase(
        "calibrate/into-model-folder-default", "calibrate", "models",
        ["calibrate", "ds", "--crops", "--model", "m", "--method", "grid", "--trials", "5"],
        setup=_cal_model({}), expect="ok", mutable=("m/calibration.json",),
        check=lambda o: json.loads((o.tmp / "m" / "calibration.json").read_text()),
    )
)  # fmt: skip


def _validation_files(files: object):
    def setup(tmp: Path) -> None:
        labelled_folder(tmp / "ds", 1, ["happy", "sad"])
        model_folder(tmp / "m", bundled_model_dir(), {"training": {"validation_files": files}}, calibration=None)

    return setup


for cid, files in [("string", "happy/happy_0.jpg"), ("ints", [1, 2, 3]), ("dict", {"a": 1})]:
    register(
        FuzzCase(
            f"evaluate/card-validation-files-{cid}", "evaluate", "models",
            ["evaluate", "ds", "--crops", "--model", "m", "--split", "validation"], setup=_validation_files(files),
        )
    )  # fmt: skip

# --- reliability reports (analyze --fusion reliability) ---------------------------------------------------------------


def _reliability(doc: object):
    def setup(tmp: Path) -> None:
        copy_crop(tmp / "x.jpg")
        model_folder(tmp / "m2", bundled_model_dir(), {"name": "ferkit-copy"}, calibration=None)
        (tmp / "rel.json").write_text(doc if isinstance(doc, str) else json.dumps(doc, allow_nan=True))

    return setup


def _block(model: str, f1: object) -> dict:
    return {"model": model, "per_class": {c: {"f1": f1} for c in SPEC["classes"]}}


for cid, doc in [
    ("not-json", "{"),
    ("results-string", {"results": "abc"}),
    ("results-list-of-ints", {"results": [1, 2]}),
    ("f1-nan", {"results": [_block("ferkit", NAN), _block("ferkit-copy", 0.5)]}),
    ("f1-negative", {"results": [_block("ferkit", -1), _block("ferkit-copy", 0.5)]}),
    ("f1-string", {"results": [_block("ferkit", "high"), _block("ferkit-copy", 0.5)]}),
    ("f1-inf", {"results": [_block("ferkit", INF), _block("ferkit-copy", 0.5)]}),
    ("direct-mapping-strings", {"ferkit": {"happy": "x"}, "ferkit-copy": {"happy": 1}}),
    ("direct-mapping-list", {"ferkit": [1, 2], "ferkit-copy": {"happy": 1}}),
    ("all-zero", {"results": [_block("ferkit", 0.0), _block("ferkit-copy", 0.0)]}),
]:
    register(
        FuzzCase(
            f"analyze/reliability-{cid}", "analyze", "models",
            [*ANALYZE, "--model", "ferkit", "--model", "m2", "--fusion", "reliability", "--reliability", "rel.json"],
            setup=_reliability(doc), expect="either" if cid == "all-zero" else "usage_error", check=_seven_probs,
        )
    )  # fmt: skip
