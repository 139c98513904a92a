"""``ferkit-au`` (emotion from AUs) against the bundled frame classifier ``ferkit`` on still images.

    python benchmarks/au_emotion_compare.py [--cache /work/scratch/au/emotion] [--heads-cache /work/scratch/au/heads]

* FER2013 test (7,178 crops, ``--crops`` path): accuracy and macro-F1 of both, one pass (``--tta none``) and with
  the mirror view (``flip``, the default for stills); the landmarker's fit rate; ``ferkit`` on the faces the
  landmarker fits and on those it does not; how often the two agree. ferkit-au is scored from the cached features
  (``benchmarks/au_features_cache.py``, the model's own crop path) with the shipped classifier.
* CK+ as unseen data (both trained on FER2013 only): the 432 crops of the 144 sequences with a FER2013 class
  (contempt left out), accuracy overall and per subject-grouped fold (5 folds, mean ± sd). The shipped AU heads were
  trained on CK+ itself, so ferkit-au is also scored with AU heads retrained without each fold's subjects
  (``ferkit.training.au_heads.train_final`` on the other subjects): that is the leak-free figure.
* CK+ subject-grouped CV of each representation (7 CK+ classes, contempt included; 5 folds by subject; all 3
  frames of a sequence train and are scored): multinomial LR on the AU feature vector (fold-retrained AU heads'
  probabilities added when the shipped classifier uses them) vs multinomial LR on ``ferkit``'s 256-d embedding.

Writes ``benchmarks/results/au_emotion_compare.json``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from au_emotion import scores
from au_features_cache import CACHE, DATA, load
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from ferkit.evaluation.scoring import predict_dataset
from ferkit.faces.align import resize_crop
from ferkit.faces.au_features import MIRROR_INDEX
from ferkit.faces.aus import AuModel
from ferkit.media.images import read_image
from ferkit.models.au_emotion import AuEmotionModel
from ferkit.models.base import OnnxModel
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "au_emotion_compare.json"
CK_MAP = {"angry": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sad": "sad",
          "surprise": "surprise"}  # fmt: skip


def fer_test(au: AuEmotionModel, base: OnnxModel, data: Path, cache: Path) -> dict[str, Any]:
    """FER2013 test: both models, one pass and with the mirror view."""
    c = load(cache, "fer_test")
    names = [str(n) for n in c["files"]]
    y = np.array([au.classes.index(n.split("/")[0]) for n in names])
    ok = c["how"] > 0
    out: dict[str, Any] = {"n": len(y), "landmarker_fit_rate": round(float(ok.mean()), 4),
                           "fitted_on_retry": int((c["how"] == 2).sum())}  # fmt: skip
    for tta in ("none", "flip"):
        pa = au.logits_of(c["x"], ok, mirror=tta == "flip").argmax(1)
        base.tta = tta
        pred = predict_dataset(base, data / "fer2013" / "test", crops=True)
        order = {p: k for k, p in enumerate(pred.paths)}
        pb = np.array([base.classes.index(pred.y_pred[order[str(data / "fer2013" / "test" / n)]]) for n in names])
        out[tta] = {
            "ferkit-au": scores(y, pa) | {"fitted_faces": scores(y[ok], pa[ok])},
            "ferkit": scores(y, pb)
            | {"fitted_faces": scores(y[ok], pb[ok]), "unfitted_faces": scores(y[~ok], pb[~ok])},
            "agreement": round(float(np.mean(pa == pb)), 4),
        }
        print(f"FER2013 test, tta {tta}: {json.dumps(out[tta])}", flush=True)
    return out


def ck_rows(data: Path) -> dict[str, Any]:
    """CK+ images with their sequence's emotion and subject (file order of the feature cache)."""
    with open(data / "ckplus_au" / "labels.csv", newline="") as fh:
        rows = {r["seq"]: r for r in csv.DictReader(fh)}
    files = sorted((data / "ckplus_au" / "images").glob("*.png"))
    seqs = ["_".join(f.name.split("_")[:2]) for f in files]
    return {"files": files, "emotion": np.array([rows[s]["emotion"] for s in seqs]),
            "subject": np.array([rows[s]["subject"] for s in seqs])}  # fmt: skip


def fold_heads(heads_cache: Path, data: Path, subjects: np.ndarray) -> list[tuple[np.ndarray, AuModel]]:
    """Per subject fold: (test mask over CK+ images, AU heads trained on the other subjects' images)."""
    from ferkit.training.au_data import load_data
    from ferkit.training.au_heads import DEFAULT, train_final

    d = load_data(data, heads_cache)
    shipped = AuModel.load()
    out = []
    for _, test in GroupKFold(5).split(subjects, groups=subjects):
        mask = np.zeros(len(subjects), bool)
        mask[test] = True
        keep = ~np.isin(d.subject, np.unique(subjects[test]))
        sub = dataclasses.replace(d, **{k: getattr(d, k)[keep] for k in ("x", "x_mirror", "y", "subject", "seq",
                                                                         "emotion", "is_peak")})  # fmt: skip
        heads, _ = train_final(sub, DEFAULT)
        out.append((mask, AuModel(heads, shipped.neutral, shipped.sha256)))
    return out


def ck_unseen(au: AuEmotionModel, base: OnnxModel, ck: dict[str, Any], x: np.ndarray, folds: list) -> dict[str, Any]:
    """Both FER2013-trained models on CK+ (contempt left out), overall and per subject fold."""
    keep = np.isin(ck["emotion"], list(CK_MAP))
    y = np.array([au.classes.index(CK_MAP.get(e, "neutral")) for e in ck["emotion"]])
    base.tta = "flip"
    crops = np.stack([resize_crop(read_image(f), base.input_size, base.channels) for f in ck["files"]])
    preds = {
        "ferkit": base.logits(crops).argmax(1),
        "ferkit-au (shipped AU heads)": au.logits_of(x, np.ones(len(x), bool), True).argmax(1),
    }
    if "aus" in au.head.inputs:
        fold_pred = np.zeros(len(x), np.int64)
        for mask, heads in folds:
            views = [x[mask], x[mask][:, MIRROR_INDEX]]
            z = np.mean([au.head.logits(au.head.design(v, heads)) for v in views], axis=0)
            fold_pred[mask] = z.argmax(1)
        preds["ferkit-au (AU heads without the fold's subjects)"] = fold_pred
    out: dict[str, Any] = {"n": int(keep.sum()), "tta": "flip (mirror view)"}
    for name, p in preds.items():
        per_fold = [float(np.mean(p[m & keep] == y[m & keep])) for m, _ in folds]
        out[name] = scores(y[keep], p[keep]) | {
            "fold_accuracy_mean": round(float(np.mean(per_fold)), 4),
            "fold_accuracy_sd": round(float(np.std(per_fold)), 4),
        }
        print(f"CK+ unseen, {name}: {out[name]}", flush=True)
    return out


def ck_trained(au: AuEmotionModel, base: OnnxModel, ck: dict[str, Any], x: np.ndarray, folds: list) -> dict[str, Any]:
    """Subject-grouped CV of a multinomial LR on each representation (7 CK+ classes)."""
    labels = sorted(set(ck["emotion"]))
    y = np.array([labels.index(e) for e in ck["emotion"]])
    crops = np.stack([resize_crop(read_image(f), base.input_size, base.channels) for f in ck["files"]])
    emb = base.embeddings(crops)
    reps: dict[str, Any] = {"ferkit embedding (256-d)": lambda m: emb, "AU features (120-d)": lambda m: x}
    if "aus" in au.head.inputs:
        reps["AU features + fold AU heads' probabilities"] = lambda m: np.hstack([x, m.presence(x)])
    out: dict[str, Any] = {"n": len(y), "classes": labels}
    for name, rep in reps.items():
        pred = np.zeros(len(y), np.int64)
        for mask, heads in folds:
            z = rep(heads)
            mu, sd = z[~mask].mean(0), z[~mask].std(0) + 1e-9
            lr = LogisticRegression(C=1.0, max_iter=5000).fit((z[~mask] - mu) / sd, y[~mask])
            pred[mask] = lr.predict((z[mask] - mu) / sd)
        per_fold = [float(np.mean(pred[m] == y[m])) for m, _ in folds]
        out[name] = scores(y, pred) | {"fold_accuracy_mean": round(float(np.mean(per_fold)), 4),
                                       "fold_accuracy_sd": round(float(np.std(per_fold)), 4)}  # fmt: skip
        print(f"CK+ trained CV, {name}: {out[name]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--heads-cache", type=Path, default=Path("/work/scratch/au/heads"))
    ap.add_argument("--data", type=Path, default=DATA)
    a = ap.parse_args()
    t0 = time.time()
    au = load_model("ferkit-au")
    base = load_model("ferkit")
    assert isinstance(au, AuEmotionModel) and isinstance(base, OnnxModel)
    result: dict[str, Any] = {"command": "python benchmarks/au_emotion_compare.py", "ferkit_au_sha256": au.sha256,
                              "fer2013_test": fer_test(au, base, a.data, a.cache)}  # fmt: skip
    ck, cx = ck_rows(a.data), load(a.cache, "ckplus")
    assert [f.name for f in ck["files"]] == [str(n) for n in cx["files"]] and (cx["how"] > 0).all()
    folds = fold_heads(a.heads_cache, a.data, ck["subject"])
    result["ckplus_unseen"] = ck_unseen(au, base, ck, cx["x"], folds)
    result["ckplus_trained_cv"] = ck_trained(au, base, ck, cx["x"], folds)
    result["secs"] = round(time.time() - t0)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    card_path = au.folder / "card.json"  # the card carries the headline figures (the weights' hash is unchanged)
    fer, ck = result["fer2013_test"], result["ckplus_unseen"]
    au.card["metrics"] = {
        "command": result["command"],
        "fer2013_test": {"landmarker_fit_rate": fer["landmarker_fit_rate"]}
        | {tta: {k: fer[tta]["ferkit-au"][k] for k in ("n", "accuracy", "macro_f1")} for tta in ("none", "flip")},
        "ckplus_unseen_flip": {k: v for k, v in ck.items() if k.startswith("ferkit-au")},
    }
    card_path.write_text(json.dumps(au.card, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
