"""The training framework on tiny real FER2013 subsets: configs, data preparation, a short run, resume, export."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import FER, fer_files  # noqa: E402

from ferkit.errors import InputError  # noqa: E402
from ferkit.training.config import config_from_dict, load_config  # noqa: E402

TWO_CLASSES = """
name = "happy_surprise"
description = "two easy classes for quick training tests"
classes = ["happy", "surprise"]
ignore = ["angry", "disgust", "fear", "neutral", "sad"]
"""


def _dataset(root: Path, per_class: int, classes=("happy", "surprise")) -> Path:
    for p in fer_files("train", per_class, list(classes)):
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / p.parent.name / p.name)
    return root


def _config(tmp: Path, data: Path, **over) -> dict:
    (tmp / "two.toml").write_text(TWO_CLASSES)
    cfg = {
        "name": "quick",
        "output": str(tmp / "runs"),
        "seed": 3,
        "deterministic": True,
        "data": {"sources": [{"path": str(data)}], "taxonomy": str(tmp / "two.toml"), "val_fraction": 0.25},
        "optim": {
            "epochs": 4,
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 0.003,
            "weight_decay": 0.05,
            "ema_decay": 0.0,
        },
        "augment": {"level": 1},
        "tracking": {"mlflow": False},
    }
    for key, value in over.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    base = {"name": "x", "data": {"sources": [{"path": "d"}]}}
    assert config_from_dict(base).optim.epochs == 30
    for bad, key in [
        ({**base, "optim": {"lrr": 0.1}}, "optim.lrr: unknown key"),
        ({**base, "optim": {"epochs": "ten"}}, "optim.epochs: expected int"),
        ({**base, "imbalance": {"loss": "focall"}}, "imbalance.loss: 'focall' is not one of"),
        ({"name": "x", "data": {"sources": [{"path": "d", "kind": "zip"}]}}, r"sources\[0\].kind: .zip. is not one"),
        ({"name": "x", "data": {"sources": []}}, "data.sources: at least one source"),
        ({"name": "x"}, "data: missing required key"),
        ({**base, "augment": {"level": 5}}, "levels are 0–3"),
    ]:
        with pytest.raises(InputError, match=key):
            config_from_dict(bad)
    (tmp_path / "a.yaml").write_text("data:\n  sources:\n    - path: d\noptim:\n  epochs: 2\n")
    assert load_config(tmp_path / "a.yaml").optim.epochs == 2
    assert load_config(tmp_path / "a.yaml").name == "a"
    (tmp_path / "b.toml").write_text('[data]\nsources = [{path = "d"}]\n[optim]\nbatchsize = 2\n')
    with pytest.raises(InputError, match=r"b.toml: optim.batchsize: unknown key \(known: epochs, batch_size"):
        load_config(tmp_path / "b.toml")
    out = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "train", str(tmp_path / "b.toml")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "optim.batchsize: unknown key" in out.stderr and "Traceback" not in out.stderr


def test_prepare_data_maps_splits_and_reports(tmp_path: Path) -> None:
    from ferkit.training.data import prepare_data

    data = _dataset(tmp_path / "d", 40, ("happy", "surprise", "neutral"))
    (data / "bewildered").mkdir()
    shutil.copy(next((data / "happy").iterdir()), data / "bewildered" / "x.jpg")
    cfg = config_from_dict(_config(tmp_path, data))
    with pytest.raises(InputError, match=r"not in taxonomy 'happy_surprise': bewildered \(1\)"):
        prepare_data(cfg, cfg.run_dir, log=lambda m: None)
    (data / "surprise" / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy(next((data / "happy").iterdir()), data / "happy" / "copy.jpg")  # a byte-identical repeat
    cfg = config_from_dict(_config(tmp_path, data, **{"data.unknown_labels": "skip"}))
    d = prepare_data(cfg, cfg.run_dir, log=lambda m: None)
    assert d.classes == ["happy", "surprise"]  # neutral ignored by the taxonomy, bewildered skipped
    assert len(d.y_train) + len(d.y_val) == 80  # 81 images minus one repeat, minus the unreadable file
    assert d.x_train.shape[1:] == (1, 48, 48) and d.x_train.dtype == torch.uint8
    split = json.loads((cfg.run_dir / "split.json").read_text())
    assert split["dropped"]["train_repeats"] == 1
    assert any(k.endswith("broken.jpg") for k in split["unreadable"])
    assert not set(split["train_keys"]) & set(split["validation_keys"])
    assert abs(len(split["validation_keys"]) - 20) <= 2  # val_fraction 0.25, stratified
    again = prepare_data(cfg, cfg.run_dir, log=lambda m: None)  # reuses split.json
    assert torch.equal(again.y_val, d.y_val)


def test_short_run_beats_chance_exports_and_tracks(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", 150)
    cfg = _config(tmp_path, data, **{"tracking.mlflow": True, "data.test_dirs": [str(FER / "test")]})
    (tmp_path / "quick.json").write_text(json.dumps(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "train", str(tmp_path / "quick.json")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    run = tmp_path / "runs" / "quick"
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 4 and max(h["val_accuracy"] for h in history) >= 0.65  # chance: 0.5
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["classes"] == ["happy", "surprise"] and card["training"]["seed"] == 3
    test = card["metrics"]["fer2013_test"]
    assert test["n"] == 1774 + 831 and test["accuracy"] >= 0.65  # real FER2013 test images of both classes
    rep = tmp_path / "rep.json"
    ev = subprocess.run(
        [
            sys.executable,
            "-m",
            "ferkit.cli",
            "evaluate",
            str(FER / "test"),
            "--crops",
            "--model",
            str(run / "model"),
            "--report",
            str(rep),
            "--tta",
            "none",  # the card's figure is one pass; evaluate's default (auto) adds the mirror view for stills
        ],
        capture_output=True,
        text=True,
    )
    assert ev.returncode == 0, ev.stderr
    assert json.loads(rep.read_text())["results"][0]["accuracy"] == pytest.approx(test["accuracy"])
    db = sqlite3.connect(tmp_path / "runs" / "mlflow.db")
    metrics = {k for (k,) in db.execute("select distinct key from metrics")}
    assert {"val_macro_f1", "val_recall_happy", "fer2013_test_accuracy"} <= metrics
    assert list((tmp_path / "runs" / "mlartifacts").rglob("model.onnx"))


def test_resume_after_interruption_is_identical(tmp_path: Path) -> None:
    from ferkit.training.loop import train

    data = _dataset(tmp_path / "d", 30)
    straight = config_from_dict(_config(tmp_path, data, **{"optim.epochs": 2, "name": "straight"}))
    train(straight, log=lambda m: None)
    cut = config_from_dict(_config(tmp_path, data, **{"optim.epochs": 2, "name": "cut"}))

    def stop(step: int, total: int) -> None:
        if (
            len(
                json.loads((cut.run_dir / "history.json").read_text())
                if (cut.run_dir / "history.json").exists()
                else []
            )
            == 1
        ):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cut, log=lambda m: None, on_step=stop)
    assert torch.load(cut.run_dir / "last.pt", weights_only=True)["epoch"] == 0
    with pytest.raises(InputError, match="pass --resume"):
        train(cut, log=lambda m: None)
    train(cut, resume=True, log=lambda m: None)
    a = torch.load(straight.run_dir / "last.pt", weights_only=True)
    b = torch.load(cut.run_dir / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["history"][-1]["val_accuracy"] == b["history"][-1]["val_accuracy"]


@pytest.mark.parametrize(
    "setting",
    [
        {"imbalance.sampler": "weighted", "imbalance.focal_from_epoch": 1, "augment.minority_level": 3},
        {
            "imbalance.minority_pretrain_epochs": 1,
            "imbalance.class_weights": "effective",
            "optim.schedule": "cosine_restarts",
            "optim.restart_epochs": 1,
            "optim.optimizer": "sgd",
            "optim.head_lr_mult": 10.0,
            "optim.ema_decay": 0.99,
            "imbalance.minority": ["disgust"],
        },
    ],
)
def test_imbalance_options_run(tmp_path: Path, setting: dict) -> None:
    from ferkit.training.loop import train

    data = _dataset(tmp_path / "d", 20, ("happy", "disgust", "surprise"))
    tax = 'name = "three"\nclasses = ["disgust", "happy", "surprise"]\nignore = ["angry", "fear", "neutral", "sad"]\n'
    cfg = config_from_dict(_config(tmp_path, data, **{"optim.epochs": 2, **setting}))
    (tmp_path / "two.toml").write_text(tax)
    res = train(cfg, log=lambda m: None)
    phases = [h["phase"] for h in res["history"]]
    if "imbalance.focal_from_epoch" in setting:
        assert phases == ["ce", "focal"]
    else:
        assert phases == ["minority", "ce", "ce"]
    assert all(h["val_recall"].keys() == {"disgust", "happy", "surprise"} for h in res["history"])


def test_mixed_sources_weak_labels_and_csv(tmp_path: Path) -> None:
    """A folder, FER2013's CSV format and keyword-tagged images in one run, each with its own weight."""
    import cv2

    from ferkit.training.data import prepare_data

    folder = _dataset(tmp_path / "d", 20)
    rows = ["emotion,pixels,Usage"]
    for p in fer_files("train", 20, ["happy", "surprise"])[::2]:  # every other file; 3 = happy, 5 = surprise
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        rows.append(f"{3 if p.parent.name == 'happy' else 5},{' '.join(map(str, img.flatten()))},Training")
    rows.append("3,1 2 3,Training")  # a bad row: skipped and listed
    (tmp_path / "fer.csv").write_text("\n".join(rows) + "\n")
    web = tmp_path / "web"
    web.mkdir()
    tags = ["file,tags"]
    for i, p in enumerate(fer_files("test", 6, ["happy", "surprise"])):
        shutil.copy(p, web / f"{i}.jpg")
        tags.append(f'{i}.jpg,"{"smiling;joyful;happy" if p.parent.name == "happy" else "shocked;surprised"}"')
    shutil.copy(web / "0.jpg", web / "both.jpg")
    shutil.copy(web / "0.jpg", web / "none.jpg")
    tags += ["98.jpg,smiling;joyful;happy", 'both.jpg,"happy;smiling;joyful;shocked"', "none.jpg,portrait"]
    (tmp_path / "tags.csv").write_text("\n".join(tags) + "\n")
    (tmp_path / "rules.toml").write_text('happy = [["happy", "smiling", "joyful"]]\nsurprise = [["shocked"]]\n')
    sources = [
        {"path": str(folder), "name": "folder"},
        {"path": str(tmp_path / "fer.csv"), "kind": "fer2013_csv", "name": "csv", "weight": 2.0},
        {
            "path": str(web),
            "kind": "weak_tags",
            "name": "web",
            "labels": str(tmp_path / "tags.csv"),
            "rules": str(tmp_path / "rules.toml"),
            "weight": 0.5,
        },
    ]
    cfg = config_from_dict(_config(tmp_path, folder, **{"data.sources": sources, "data.drop_duplicates": False}))
    logs: list[str] = []
    d = prepare_data(cfg, cfg.run_dir, log=logs.append)
    assert len(d.y_train) + len(d.y_val) == 40 + 20 + 12
    # each image's draw weight is its source's weight / the source's train count: shares follow the weights
    assert len(set(d.source_weight.round(9).tolist())) == 3 and d.source_weight.sum() == pytest.approx(3.5)
    split = json.loads((cfg.run_dir / "split.json").read_text())
    assert split["weak_labels"]["web"]["labelled"] == 12
    assert {k: split["weak_labels"]["web"][k] for k in ("conflicts", "empty", "missing")} == {
        "conflicts": 1,
        "empty": 1,
        "missing": 1,
    }
    assert any("bad rows: 1" in m for m in logs)
    dup = split["duplicates"]  # the CSV rows are pixel copies of folder files only by content, not by bytes
    assert dup["cross_split_groups"] == 0


def test_train_batch_runs_each_config_and_reports_failures(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d", 20)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    good = _config(tmp_path, data, **{"optim.epochs": 1, "name": "a_good"})
    (sweep / "a_good.json").write_text(json.dumps(good))
    (sweep / "b_typo.json").write_text(json.dumps({**good, "name": "b_typo", "optim": {"epoch": 1}}))
    summary = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "train-batch", str(sweep), "--summary", str(summary)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    rows = json.loads(summary.read_text())
    assert rows[0]["status"] == "ok" and (tmp_path / "runs" / "a_good" / "model" / "model.onnx").is_file()
    assert rows[1]["status"].startswith("error") and "optim.epoch: unknown key" in rows[1]["status"]


def test_dataset_command_reports_fer2013_duplicates_and_leakage(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "dataset", str(FER), "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["counts"]["train"]["disgust"] == 436 and sum(rep["counts"]["test"].values()) == 7178
    assert rep["duplicates"]["within"]["train"]["redundant_copies"] == 1236
    assert rep["duplicates"]["cross_split_groups"] == 531 and rep["duplicates"]["train_copies_of_eval"] == 703
    assert "1236 redundant byte copies" in out.stderr and "531 duplicate groups span splits" in out.stderr


def test_attention_ensemble_trains_and_exports_to_a_model_folder(tmp_path: Path) -> None:
    """A learned-attention ensemble of two backbones runs through train → export → load_model like any model."""
    import numpy as np

    from ferkit.models.loading import load_model
    from ferkit.training.export import export_run
    from ferkit.training.loop import train

    data = _dataset(tmp_path / "d", 20)
    options = {"members": ["vgg_small", "mobilenetv3_small"], "member_kwargs": [None, {"width": 0.5}], "dim": 64}
    cfg = config_from_dict(
        _config(
            tmp_path,
            data,
            **{
                "optim.epochs": 1,
                "model.backbone": "attention_ensemble",
                "model.options": options,
                "data.input_size": 64,
            },
        )
    )
    train(cfg, log=lambda m: None)
    card = export_run(cfg.run_dir, tmp_path / "ens", test_dirs=[])
    assert card["architecture"]["backbone"] == "attention_ensemble" and card["input_size"] == 64
    model = load_model(tmp_path / "ens")
    probs = model.predict_proba(np.zeros((3, 64, 64), np.uint8))
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_distill_loss_matches_hand_computed_value() -> None:
    from ferkit.training.distill import distill_loss

    s = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = np.array([[1.0, 1.5, -0.5], [3.0, 0.0, 0.0]])
    temp = 2.0

    def log_softmax(z: np.ndarray) -> np.ndarray:
        z = z / temp
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    p_t = np.exp(log_softmax(t))
    want = (p_t * (log_softmax(t) - log_softmax(s))).sum(1).mean() * temp**2
    got = distill_loss(torch.tensor(s), torch.tensor(t), temp).item()
    assert got == pytest.approx(want, rel=1e-9) and want > 0
    assert distill_loss(torch.tensor(t), torch.tensor(t), temp).item() == pytest.approx(0.0, abs=1e-12)


def test_tta_views() -> None:
    from ferkit.training.distill import tta_views

    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    assert len(tta_views(x, "none")) == 1 and len(tta_views(x, "flip")) == 2
    views = tta_views(x, "flip_shift", shift=1)
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    assert torch.equal(views[1][..., 0], x[..., -1])  # the mirror
    assert torch.equal(views[2][..., 1:], x[..., :-1])  # shifted right by one pixel (circularly)


def test_student_learns_from_the_teacher_alone(tmp_path: Path) -> None:
    """With alpha = 1 the student never sees a label, only the teacher's soft outputs (offline, ten views)."""
    from ferkit.training.distill import Teacher, tta_views
    from ferkit.training.loop import normalise, train

    data = _dataset(tmp_path / "d", 150)
    teacher = train(config_from_dict(_config(tmp_path, data, name="teacher")), log=lambda m: None)
    assert max(h["val_accuracy"] for h in teacher["history"]) >= 0.65
    best = Path(teacher["run_dir"]) / "best.pt"
    over = {
        "name": "student",
        "distill.teacher": str(best),
        "distill.alpha": 1.0,
        "distill.views": "flip_shift",
        "distill.offline": True,
    }
    cfg = config_from_dict(_config(tmp_path, data, **over))
    student = train(cfg, log=lambda m: None)
    assert max(h["val_accuracy"] for h in student["history"]) >= 0.65  # chance: 0.5
    assert (Path(student["run_dir"]) / "teacher_logits.pt").is_file()  # reused by --resume
    # offline targets = the mean of the teacher's logits over the ten views, image by image
    t = Teacher(cfg, ["happy", "surprise"], "cpu")
    x = torch.randint(0, 256, (3, 1, 48, 48), dtype=torch.uint8)
    with torch.no_grad():
        manual = torch.stack([t.model(v)[0] for v in tta_views(normalise(x, cfg), "flip_shift", 2)]).mean(0)
    torch.testing.assert_close(t.table(x, lambda b: normalise(b, cfg), batch=2), manual)
    online = {**over, "name": "online", "distill.views": "flip", "distill.offline": False, "optim.epochs": 1}
    assert len(train(config_from_dict(_config(tmp_path, data, **online)), log=lambda m: None)["history"]) == 1
    bad = _config(tmp_path, data, **{**over, "name": "wrong", "data.input_size": 64})
    with pytest.raises(InputError, match=r"distill\.teacher: .* does not match this run: input_size 48"):
        train(config_from_dict(bad), log=lambda m: None)
    for key, value in (("distill.alpha", 1.5), ("distill.views", "crops")):
        with pytest.raises(InputError, match=key.replace(".", r"\.")):
            config_from_dict(_config(tmp_path, data, **{key: value}))


def test_init_from_the_bundled_model_folder_fine_tunes_it(tmp_path: Path) -> None:
    """``model.init_from = "ferkit"``: the shipped ONNX weights in torch (eval mode = the ONNX graph), and a short
    fine-tune keeps what they know where a random start after the same steps is near chance."""
    from ferkit.models.loading import load_model
    from ferkit.training.loop import build_model, normalise, train

    classes = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    data = _dataset(tmp_path / "d", 12, classes)
    base = _config(tmp_path, data, **{"data.taxonomy": "basic7", "model.init_from": "ferkit"})
    cfg = config_from_dict(base)
    files = sorted(data.glob("*/*.jpg"))
    from ferkit.faces.align import resize_crop
    from ferkit.media.images import read_image

    px = np.stack([resize_crop(read_image(p), 48, "gray") for p in files])
    x = torch.from_numpy(px)[:, None]
    model = build_model(cfg, 7, x).eval()
    with torch.no_grad():
        ours = model(normalise(x, cfg))[0].numpy()
    ref = load_model("ferkit", calibration=False).forward_logits(px)
    assert np.abs(ours - ref).max() < 1e-3
    with pytest.raises(InputError, match="does not fit"):
        build_model(config_from_dict(_config(tmp_path, data, **{"model.init_from": "ferkit"})), 2, x)  # 2 classes

    wide = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt", "hard_case", "speech_action"]
    wider = build_model(
        config_from_dict(_config(tmp_path, data, **{"data.taxonomy": "extended", "model.init_from": "ferkit"})),
        10,
        x,
        wide,
    ).eval()
    with torch.no_grad():
        logits = wider(normalise(x, cfg))[0].numpy()
    assert np.abs(logits[:, :7] - ref).max() < 1e-3  # the basic classes' rows, copied by name
    assert (logits[:, 7:].max(1) < logits[:, :7].max(1)).all()  # new classes start below the old decision
    with pytest.raises(InputError, match="does not fit"):
        build_model(cfg, 10, x, [*wide[:6], "other", *wide[7:]])  # a class of the old model is missing

    runs = {}
    for name, init in (("ft", "ferkit"), ("scratch", None)):
        over = {"name": name, "data.taxonomy": "basic7", "optim.epochs": 1, "optim.lr": 3e-4, "model.init_from": init}
        runs[name] = train(config_from_dict(_config(tmp_path, data, **over)), log=lambda m: None)
    ft, scratch = (runs[k]["history"][-1]["val_accuracy"] for k in ("ft", "scratch"))
    assert ft >= 0.5 > scratch  # 21 validation faces of 7 classes: chance is 1/7


def test_init_from_a_damaged_model_folder_is_one_clean_error(tmp_path: Path) -> None:
    """A model folder named by ``model.init_from`` is checked like any model folder: card keys, weights' SHA-256."""
    from ferkit.errors import FerkitError
    from ferkit.models.loading import MODEL_FOLDERS
    from ferkit.training.loop import build_model
    from ferkit.training.preflight import check_run

    data = _dataset(tmp_path / "d", 2, ("happy", "surprise"))
    x = torch.zeros(4, 1, 48, 48, dtype=torch.uint8)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "card.json").write_bytes(b"\xff{not json")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(MODEL_FOLDERS["ferkit"], corrupt)
    blob = bytearray((corrupt / "model.onnx").read_bytes())
    blob[-10] ^= 0xFF
    (corrupt / "model.onnx").write_bytes(bytes(blob))
    for folder, message in ((garbage, "not UTF-8"), (corrupt, "SHA-256 mismatch")):
        cfg = config_from_dict(_config(tmp_path, data, **{"data.taxonomy": "basic7", "model.init_from": str(folder)}))
        with pytest.raises(FerkitError, match=message):
            build_model(cfg, 7, x)
        with pytest.raises(FerkitError, match=message):  # refused by the pre-check, before any output
            check_run(cfg, export=False)


@pytest.mark.parametrize("kill_at_epoch", [0, 2])
def test_sigkilled_training_resumes_to_the_same_weights(tmp_path: Path, kill_at_epoch: int) -> None:
    """``ferkit train`` killed with SIGKILL (in the epoch after the one ``last.pt`` holds) and resumed with --resume
    ends with the weights of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    data = _dataset(tmp_path / "d", 30)
    cfgs = {}
    for name in ("straight", "killed"):
        cfgs[name] = tmp_path / f"{name}.json"
        cfgs[name].write_text(json.dumps(_config(tmp_path, data, **{"optim.epochs": 4, "name": name})))
    cli = [sys.executable, "-m", "ferkit.cli", "train", "--no-export"]
    assert subprocess.run([*cli, str(cfgs["straight"])], capture_output=True, cwd=tmp_path).returncode == 0
    last = tmp_path / "runs" / "killed" / "last.pt"
    proc = subprocess.Popen([*cli, str(cfgs["killed"])], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and torch.load(last, weights_only=True)["epoch"] >= kill_at_epoch:  # written atomically
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    res = subprocess.run([*cli, str(cfgs["killed"]), "--resume"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    a = torch.load(tmp_path / "runs" / "straight" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k


def test_split_from_a_model_folder_validates_on_its_cards_list(tmp_path: Path) -> None:
    """``data.split_from = "ferkit"``: the bundled model's held-out FER2013 train images validate a new run (so a
    fine-tune of it is scored on images it never trained on); files the card does not list train."""
    from ferkit.models.loading import load_model
    from ferkit.training.data import prepare_data

    listed = load_model("ferkit", calibration=False).card.extra["training"]["validation_files"]
    data = tmp_path / "fer"  # FER2013's layout: a train split folder, so only the listed images validate
    for name in listed:  # links: the card's whole list, plus 5 train images per class it does not list
        (data / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        (data / "train" / name).symlink_to(FER / "train" / name)
    extra = {f"{c}/{p.name}" for c in ("happy", "sad") for p in sorted((FER / "train" / c).iterdir())[:40]}
    extra = sorted(extra - set(listed))[:10]
    for name in extra:
        (data / "train" / name).symlink_to(FER / "train" / name)
    over = {"data.taxonomy": "basic7", "data.split_from": "ferkit", "data.val_fraction": 0.5}
    cfg = config_from_dict(_config(tmp_path, data, **over))
    prepare_data(cfg, cfg.run_dir, log=lambda m: None)
    split = json.loads((cfg.run_dir / "split.json").read_text())
    assert set(split["validation_files"]) <= set(listed) and len(split["validation_files"]) >= 0.95 * len(listed)
    assert len(split["train_keys"]) == len(extra)  # val_fraction does not carve more from the rest
    with pytest.raises(InputError, match=r"data\.split_from: nothing\.json is not a readable"):
        prepare_data(
            config_from_dict(_config(tmp_path, data, **{**over, "data.split_from": "nothing.json"})),
            tmp_path / "x",
            log=lambda m: None,
        )
