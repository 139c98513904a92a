"""The extended-taxonomy model (issue 15, docs/speech_action.md): measure trained runs, then ship the chosen one.

    python benchmarks/speech_action_synth.py --n 2000 --seed 0 --out runs/extended/synth   # or `ferkit synth …`
    python benchmarks/flywheel_turn.py --work runs/extended       # mine → scripted curation → runs/extended/dataset
    ferkit train configs/extended/1_fer_synth_ckplus.toml        # arm A: before the flywheel data
    ferkit train configs/extended/2_flywheel.toml                # arm B: with it
    python benchmarks/extended_model.py measure --model ferkit \
        --model runs/extended/extended_a_fer_synth_ckplus/model --model runs/extended/extended_b_flywheel/model
    python benchmarks/extended_model.py ship --run runs/extended/extended_c_flywheel_head10
    python benchmarks/extended_model.py gate-data --out runs/extended/gate_data    # for the clear_vs_hard gate:
    python -m ferkit.training.gate build --model ferkit-extended --data runs/extended/gate_data \
        --taxonomy clear_vs_hard --out src/ferkit/assets/models/ferkit-gate-hard [--occlusion gridmask]

``measure`` scores each model (bundled or run folder) as shipped — its own calibration if any, a mirror view for
stills, none for video — and writes benchmarks/results/extended_model.json:

- FER2013 test, the model's classes mapped back to the basic seven (``MODEL:basic7``, :mod:`ferkit.models.views`):
  accuracy and macro-F1; with all its classes, the share of test faces it calls a non-basic class;
- the labelled talking clips (``../shared/data/video_labelled``, evaluation only), mapped back: frame and clip
  accuracy (contempt is skipped for basic classes), and with all classes, the share of frames called each non-basic
  class per clip;
- the false emotion rate on speech: the share of the neutral speaker's face frames (``video_labelled/neutral``,
  speaking throughout) called one of the six basic emotions or contempt — ``speech_action`` and ``hard_case`` are not
  emotions; the basic view counts everything but neutral.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "data"
OUT = HERE / "results" / "extended_model.json"
BASIC = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
SHIPPED = ROOT / "src" / "ferkit" / "assets" / "models" / "ferkit-extended"


def _pick(block: dict) -> dict:
    return {k: block[k] for k in ("n", "accuracy", "macro_f1", "balanced_accuracy") if k in block}


def measure_one(model: str) -> dict:
    """Every figure of the module doc for one model."""
    from ferkit.api import evaluate
    from ferkit.models.loading import load_model

    classes = load_model(model).classes
    extra = [c for c in classes if c not in BASIC]
    view = f"{model}:basic7" if extra else model
    fer = evaluate(DATA / "fer2013" / "test", models=[view], crops=True)["results"][0]
    clips = evaluate(DATA / "video_labelled", models=[view])["results"][0]
    out: dict = {
        "classes": classes,
        "fer2013_test_basic7": _pick(fer),
        "fer2013_test_per_class_recall": {c: v.get("recall") for c, v in fer["per_class"].items()},
        "clips_basic7": {
            "frames": _pick(clips),
            "clips": _pick(clips["clip_level"]),
            "per_clip": {r["true"]: r["predicted"] for r in clips["per_clip"]},
            "skipped_classes": clips.get("skipped_classes"),
        },
    }
    neutral = [r for r in clips["per_clip"] if r["true"] == "neutral"]
    out["false_emotion_rate_on_speech_basic7"] = round(1 - neutral[0]["shares"].get("neutral", 0.0), 4)
    if extra:
        fer_all = evaluate(DATA / "fer2013" / "test", models=[model], crops=True)["results"][0]
        called = fer_all["confusion_matrix"]
        col = {c: sum(row[called["labels"].index(c)] for row in called["matrix"]) for c in extra}
        out["fer2013_test_called_non_basic"] = {c: round(n / fer_all["n"], 4) for c, n in col.items()}
        clips_all = evaluate(DATA / "video_labelled", models=[model])["results"][0]
        rows = {r["true"]: r for r in clips_all["per_clip"]}
        out["clips_all_classes"] = {
            "frames": _pick(clips_all),
            "clips": _pick(clips_all["clip_level"]),
            "per_clip": {t: r["predicted"] for t, r in rows.items()},
            "non_basic_share_per_clip": {t: {c: r["shares"].get(c, 0.0) for c in extra} for t, r in rows.items()},
        }
        shares = rows["neutral"]["shares"]
        out["false_emotion_rate_on_speech"] = round(sum(shares.get(c, 0.0) for c in EMOTIONS), 4)
        out["neutral_speech_frames_called"] = {c: v for c, v in shares.items() if v}
    return out


def measure(a: argparse.Namespace) -> None:
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for m in a.model:
        results[m] = measure_one(m)
        print(m, json.dumps(results[m], indent=1))
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1))


def ship(a: argparse.Namespace) -> None:
    """Copy the run's exported model folder into the package with its card extended by the measured figures."""
    src = a.run / "model"
    results = json.loads(OUT.read_text())
    figures = results.get(str(src))
    if figures is None:
        raise SystemExit(f"measure {src} first")
    if SHIPPED.exists():
        shutil.rmtree(SHIPPED)
    shutil.copytree(src, SHIPPED)
    card_path = SHIPPED / "card.json"
    card = json.loads(card_path.read_text())
    card["name"] = "ferkit-extended"
    if a.choice:
        card["training"]["choice"] = a.choice
    card.setdefault("metrics", {})["shipped"] = figures
    card["classes_note"] = (
        "questioning and boredom had no training images: their outputs were never trained and should be ignored "
        "(the basic view ferkit-extended:basic7 drops them); contempt had 8 CK+ training images and hard_case the "
        "flywheel turn's labels only — too few to trust; see docs/speech_action.md"
    )
    card["mapping_back"] = (
        "load 'ferkit-extended:basic7' (or --model ferkit-extended:basic7): the model's own probabilities over the "
        "seven basic classes, renormalised; speech_action, hard_case, contempt, questioning and boredom are dropped"
    )
    card_path.write_text(json.dumps(card, indent=1))
    print(f"shipped {SHIPPED}")


def gate_data(a: argparse.Namespace) -> None:
    """A ``train/<class>/`` folder of links for the ``clear_vs_hard`` gate: FER2013 train's class folders, the
    composites and the flywheel's ``speech_action`` faces, the flywheel's ``hard_case`` faces (file names as the
    ``ferkit-extended`` card's validation list names them, so the gate validates on the same held-out images)."""
    train = a.out / "train"
    train.mkdir(parents=True, exist_ok=True)
    for c in BASIC:
        link = train / c
        if not link.exists():
            link.symlink_to((DATA / "fer2013" / "train" / c).resolve())
    groups = {
        "speech_action": [a.synth / "speech_action", a.flywheel / "speech_action"],
        "hard_case": [a.flywheel / "hard_case"],
    }
    for label, folders in groups.items():
        (train / label).mkdir(exist_ok=True)
        for folder in folders:
            for f in sorted(folder.glob("*.png")):
                if not (train / label / f.name).exists():
                    (train / label / f.name).symlink_to(f.resolve())
    print({p.name: len(list(p.iterdir())) for p in sorted(train.iterdir())})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--model", action="append", required=True)
    s = sub.add_parser("ship")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--choice", default="", help="why this run (the selection rule), for the card")
    g = sub.add_parser("gate-data")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--synth", type=Path, default=ROOT / "runs" / "extended" / "synth")
    g.add_argument("--flywheel", type=Path, default=ROOT / "runs" / "extended" / "dataset")
    a = ap.parse_args()
    {"measure": measure, "ship": ship, "gate-data": gate_data}[a.cmd](a)


if __name__ == "__main__":
    main()
