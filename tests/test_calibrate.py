"""Calibration: biases and temperature on real FER2013 logits, sidecar round trip and refusal, CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, FER
from sklearn.metrics import f1_score

from ferkit.errors import InputError, ModelError
from ferkit.evaluation.scoring import predict_dataset, split_files
from ferkit.models.calibration import (
    Calibration,
    distribution_distance,
    expected_calibration_error,
    fit_calibration,
    fit_temperature,
    log_softmax,
    make_objective,
    parse_target,
    search_bias,
)
from ferkit.models.loading import load_model


@pytest.fixture(scope="module")
def raw_model():
    return load_model("ferkit", calibration=False)


@pytest.fixture(scope="module")
def val_logits(raw_model) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits and labels of the bundled model on its own validation files (never trained on, not test)."""
    files = split_files(raw_model, "validation")
    pred = predict_dataset(raw_model, FER / "train", crops=True, files=files)
    y = np.array([CLASSES.index(t) for t in pred.y_true])
    return pred.raw_logits, y


def _halves(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(y)), test_size=0.5, random_state=1, stratify=y)


#: A skew like the "always happy, never disgust or fear" models users complain about, put on the real logits.
SKEW = np.array([0.0, -1.5, -1.0, 1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("method", ["grid", "tpe", "evolution"])
def test_bias_search_repairs_a_skewed_model_on_held_out_half(val_logits, method: str) -> None:
    z, y = val_logits
    z = z + SKEW
    fit, held = _halves(y)
    bias, best = search_bias(z[fit], make_objective("macro_f1", y[fit]), method, trials=150)
    before_fit = f1_score(y[fit], z[fit].argmax(1), average="macro")
    assert best > before_fit  # the search found something better than no bias on its own data
    before = f1_score(y[held], z[held].argmax(1), average="macro")
    after = f1_score(y[held], (z[held] + bias).argmax(1), average="macro")
    assert after > before, (method, before, after)
    assert abs(bias.mean()) < 1e-9 and np.abs(bias).max() <= 4.0


def test_temperature_lowers_held_out_nll_and_keeps_decisions(val_logits) -> None:
    """On real logits made over-confident (×2.5, as a less regularised net would be), T fitted on one half helps the
    other; the bundled model itself is already close to calibrated (its fitted T is ~0.94)."""
    z, y = val_logits
    z = z * 2.5
    fit, held = _halves(y)
    t = fit_temperature(z[fit], y[fit])
    nll = lambda s: -log_softmax(s)[np.arange(len(held)), y[held]].mean()  # noqa: E731
    assert nll(z[held] / t) < nll(z[held])
    np.testing.assert_array_equal((z / t).argmax(1), z.argmax(1))


def test_distribution_matching_moves_predictions_towards_known_ratios(val_logits) -> None:
    """Unlabelled mode on a set whose true ratios we know: the validation set's own class ratios."""
    z, y = val_logits
    fit, held = _halves(y)
    target = np.bincount(y, minlength=7) / len(y)
    cal = fit_calibration(z[fit], CLASSES, "x" * 64, objective="distribution", method="tpe", target=target)
    assert cal.temperature == 1.0  # no labels: no temperature
    before = distribution_distance(z[held].argmax(1), target)
    after = distribution_distance(cal.apply(z[held]).argmax(1), target)
    assert after < before


def test_ece_matches_a_hand_computed_case() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1])
    # bins (15 equal-width): 0.9 → bin 13, 0.8 → bin 11, 0.7 → bin 10, 0.55 → bin 8, each alone:
    # |1 - 0.9| + |0 - 0.8| + |1 - 0.7| + |1 - 0.55| = 0.1 + 0.8 + 0.3 + 0.45 = 1.65, / 4
    ece, table = expected_calibration_error(probs, y)
    assert ece == pytest.approx(1.65 / 4)
    assert sum(b["count"] for b in table) == 4 and len(table) == 15


def test_sidecar_round_trip_and_refusals(tmp_path: Path, raw_model) -> None:
    cal = Calibration(raw_model.sha256, CLASSES, [0.1, -0.2, 0.3, 0.0, -0.1, 0.05, -0.15], 1.3, "grid", "macro_f1")
    path = cal.save(tmp_path / "cal.json")
    back = Calibration.load(path)
    assert back == cal
    model = load_model("ferkit", calibration=path)
    crops = np.full((2, 48, 48), 128, np.uint8)
    np.testing.assert_allclose(model.logits(crops), cal.apply(raw_model.raw_logits(crops)), rtol=1e-5)
    other = Calibration("0" * 64, CLASSES, [0.0] * 7)
    with pytest.raises(ModelError, match="fitted for model"):
        load_model("ferkit", calibration=other.save(tmp_path / "other.json"))
    (tmp_path / "corrupt.json").write_text('{"model_sha256": "ab", "classes": [')
    with pytest.raises(ModelError, match="not a valid calibration"):
        Calibration.load(tmp_path / "corrupt.json")
    bad = json.loads(path.read_text()) | {"bias": [0.0, 1.0]}
    (tmp_path / "short.json").write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="one finite number per class"):
        Calibration.load(tmp_path / "short.json")


def test_target_parsing() -> None:
    assert parse_target("happy=3,sad=1", CLASSES).tolist() == [0, 0, 0, 0.75, 0, 0.25, 0]
    with pytest.raises(InputError, match="unknown class 'joy'"):
        parse_target("joy=1", CLASSES)
    with pytest.raises(InputError, match="not all zero"):
        parse_target("happy=0", CLASSES)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_calibrate_cli_writes_a_file_that_evaluate_applies(tmp_path: Path) -> None:
    data = FER / "train"
    out = tmp_path / "cal.json"
    r = _cli(
        "calibrate",
        str(data),
        "--crops",
        "--split",
        "validation",
        "--method",
        "grid",
        "--output",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    cal = Calibration.load(out)
    assert cal.metrics["after"]["macro_f1"] >= cal.metrics["before"]["macro_f1"]  # biases kept only if better
    # held-out NLL (what the temperature minimises) falls; ECE on 809 images is too noisy for a strict check
    assert cal.metrics["after"]["nll"] < cal.metrics["before"]["nll"]
    small = tmp_path / "small"
    for c in CLASSES:
        (small / c).mkdir(parents=True)
        for p in sorted((FER / "test" / c).iterdir())[:3]:
            (small / c / p.name).write_bytes(p.read_bytes())
    raw = _cli("evaluate", str(small), "--crops", "--no-calibration", "--report", "raw.json", cwd=tmp_path)
    calr = _cli("evaluate", str(small), "--crops", "--calibration", str(out), "--report", "cal.json", cwd=tmp_path)
    assert raw.returncode == 0 and calr.returncode == 0, raw.stderr + calr.stderr
    b_raw = json.loads((tmp_path / "raw.json").read_text())["results"][0]
    b_cal = json.loads((tmp_path / "cal.json").read_text())["results"][0]
    assert b_raw["protocol"]["calibration"] is None
    assert b_cal["protocol"]["calibration"]["bias"] == cal.bias


def test_calibrate_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    r = _cli("evaluate", str(FER / "test"), "--crops", "--calibration", str(tmp_path / "broken.json"), cwd=tmp_path)
    assert r.returncode == 2 and "not a valid calibration file" in r.stderr and "Traceback" not in r.stderr
    r = _cli(
        "calibrate", str(FER / "test"), "--crops", "--objective", "distribution", "--target", "joy=1", cwd=tmp_path
    )
    assert r.returncode == 2 and "unknown class 'joy'" in r.stderr
    r = _cli("calibrate", str(FER / "test"), "--crops", "--method", "annealing", cwd=tmp_path)
    assert r.returncode == 2 and "unknown method" in r.stderr


def test_logits_cache_is_written_whole_and_a_damaged_one_is_recomputed(tmp_path: Path) -> None:

    from ferkit.evaluation.calibration_inputs import cached_logits
    from ferkit.media.files import atomic_write_bytes

    cache = tmp_path / "logits.npz"
    assert cached_logits(cache) is None
    buf = io.BytesIO()
    np.savez(buf, logits=np.ones((2, 7)), labels=np.array([0, 3]), n=5)
    atomic_write_bytes(cache, buf.getvalue())
    z, y, n = cached_logits(cache)
    assert z.shape == (2, 7) and y.tolist() == [0, 3] and n == 5
    cache.write_bytes(buf.getvalue()[:100])  # half a file (a run killed mid-write before the atomic writes)
    assert cached_logits(cache) is None
