"""Train the AU heads shipped in ``ferkit/assets/aus/au_heads.json`` and write their card.

    python -m ferkit.training.au_heads --out runs/au [--cache runs/au_cache] [--data ../shared/data] [--seed 0]

Recipe ``allframes_c0.03_fer580`` (default): per AU a standardised LogisticRegression (C=0.03, class_weight balanced)
on all 3 final CK+ frames of each sequence (labelled with the peak frame's FACS codes) plus 580 FER2013 train/neutral
faces as all-absent negatives; lateral heads (AU2, AU12, AU14) see the left and midline features and are trained
with mirrored rows too. Evaluation: subject-grouped 5-fold CV on the CK+ peak frames, thresholds chosen per outer fold
by a subject-grouped inner 4-fold CV, bootstrap 95 % CIs over subjects. The final heads' thresholds come from a
5-fold out-of-fold prediction on all subjects. Writes ``OUT/au_heads.json`` and ``OUT/au_card.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ferkit.faces.au_features import FEATURE_NAMES, MIRROR_INDEX
from ferkit.faces.au_heads import AUHead, AUModel
from ferkit.faces.aus import STILL_PAD, STILL_SIZE
from ferkit.training.au_card import card, summary
from ferkit.training.au_data import (
    AUS,
    BOOTSTRAPS,
    CROP_TAG,
    DEFAULT_DATA,
    INTENSITY,
    LATERAL_AUS,
    TARGET_AUS,
    AuData,
    load_data,
)

LEFT_FEATURES = tuple(n for j, n in enumerate(FEATURE_NAMES) if MIRROR_INDEX[j] == j or n.endswith(("_L", "Left")))


@dataclass(frozen=True)
class Recipe:
    """One training recipe: CK+ frames (``all`` or ``peak``), FER neutral negatives, LR strength."""

    name: str = "allframes_c0.03_fer580"
    frames: str = "all"
    fer_neg: int = 580
    c: float = 0.03
    balanced: bool = True
    mirror_aug: bool = False  # set for lateral heads only

    def meta(self) -> dict[str, Any]:
        """The prototype's ``variant`` record (kept so the heads file reproduces byte for byte)."""
        return {
            "name": self.name,
            "cfg": CROP_TAG,
            "frames": self.frames,
            "fer_neg": self.fer_neg,
            "mirror_aug": False,
            "tta": False,
            "model": "lr",
            "c": self.c,
            "balanced": self.balanced,
        }


DEFAULT = Recipe()
RECIPES = {
    r.name: r
    for r in (
        DEFAULT,
        Recipe("allframes_c0.03", fer_neg=0),
        Recipe("allframes_c0.3_fer580", c=0.3),
        Recipe("peak_c0.03_fer580", frames="peak"),
    )
}


@dataclass(frozen=True)
class Fitted:
    """A trained logistic head as plain numbers over the feature subset ``idx``."""

    idx: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Logits of feature rows ``x`` (N, F)."""
        return ((x[:, self.idx] - self.mean) / self.scale) @ self.coef + self.intercept

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Presence probabilities."""
        return 1 / (1 + np.exp(-self.logit(x)))


def fit_head(d: AuData, r: Recipe, rows: np.ndarray, k: int, lateral: bool = False) -> Fitted:
    """Fit AU column ``k`` on CK+ row indices ``rows`` (+ FER negatives); a lateral head sees left+midline features
    and is trained on mirrored rows as well."""
    if lateral:
        r = replace(r, mirror_aug=True)
        idx = np.array([FEATURE_NAMES.index(n) for n in LEFT_FEATURES])
    else:
        idx = np.arange(len(FEATURE_NAMES))
    sel = rows if r.frames == "all" else rows[d.is_peak[rows]]
    x, y = d.x[sel], d.y[sel, k]
    if r.fer_neg:
        x = np.vstack([x, d.fer[: r.fer_neg]])
        y = np.concatenate([y, np.zeros(min(r.fer_neg, len(d.fer)), np.int64)])
    if r.mirror_aug:
        x, y = np.vstack([x, x[:, MIRROR_INDEX]]), np.concatenate([y, y])
    xs = x[:, idx]
    mean, sd = xs.mean(0), xs.std(0)
    scale = np.where(sd > 1e-6, sd, 1.0)
    lr = LogisticRegression(C=r.c, class_weight="balanced" if r.balanced else None, max_iter=5000)
    lr.fit((xs - mean) / scale, y)
    return Fitted(idx, mean, scale, lr.coef_[0].astype(np.float64), float(lr.intercept_[0]))


def head_proba(h: Fitted, x: np.ndarray, lateral: bool) -> np.ndarray:
    """Bilateral probability; for a lateral head max(left, right)."""
    return np.maximum(h.proba(x), h.proba(x[:, MIRROR_INDEX])) if lateral else h.proba(x)


def f1_fast(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 along the last axis (0 where there are neither positives nor predicted positives)."""
    tp = (pred & (y == 1)).sum(-1)
    denom = pred.sum(-1) + (y == 1).sum(-1)
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Threshold maximising F1 (middle of the best plateau), clipped to [1e-4, 1 − 1e-4]; 0.5 without positives."""
    if y.sum() == 0:
        return 0.5
    ps = np.unique(p)
    cands = np.concatenate([[ps[0] - 1e-9], (ps[1:] + ps[:-1]) / 2])
    f1s = f1_fast(y[None, :], p[None, :] >= cands[:, None])
    best = np.flatnonzero(f1s >= f1s.max() - 1e-12)
    return float(np.clip(cands[best[len(best) // 2]], 1e-4, 1 - 1e-4))


def oof_proba(
    d: AuData, r: Recipe, rows: np.ndarray, k: int, splits: int, seed: int, lateral: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Subject-grouped out-of-fold probabilities on the peak rows among ``rows``: ``(peak_rows, p)``."""
    peak = rows[d.is_peak[rows]]
    p = np.zeros(len(peak))
    for tr, te in GroupKFold(n_splits=splits, shuffle=True, random_state=seed).split(peak, groups=d.subject[peak]):
        tr_rows = rows[np.isin(d.subject[rows], list(set(d.subject[peak[tr]])))]
        if d.y[tr_rows, k].sum() > 0:
            p[te] = head_proba(fit_head(d, r, tr_rows, k, lateral), d.x[peak[te]], lateral)
    return peak, p


def evaluate(
    d: AuData, r: Recipe, aus: tuple[str, ...], seed: int, outer: int = 5, inner: int = 4, lateral: bool = False
) -> dict[str, Any]:
    """Outer subject-grouped CV on the peak frames; each fold's thresholds from inner-CV OOF predictions on its
    training subjects. For lateral heads also the left/right probabilities (``prob_l``/``prob_r``)."""
    all_rows = np.arange(len(d.x))
    peak = all_rows[d.is_peak]
    shape = (len(peak), len(aus))
    pred, prob, prob_l, prob_r, row_thr = (np.zeros(shape) for _ in range(5))
    thr = np.zeros((outer, len(aus)))
    folds = list(GroupKFold(n_splits=outer, shuffle=True, random_state=seed).split(peak, groups=d.subject[peak]))
    bar = tqdm(
        total=outer * len(aus),
        desc=f"CV {r.name}{' lateral' if lateral else ''} seed {seed}",
        file=sys.stderr,
        mininterval=2.0,
        leave=False,
    )
    with threadpool_limits(1):  # small problems: multi-threaded BLAS only oversubscribes the cores (10x slower)
        for f, (tr, te) in enumerate(folds):
            tr_rows = all_rows[np.isin(d.subject, list(set(d.subject[peak[tr]])))]
            for j, au in enumerate(aus):
                k = AUS.index(au)
                _, pin = oof_proba(d, r, tr_rows, k, inner, seed + 100 + f, lateral)
                t = best_threshold(d.y[tr_rows[d.is_peak[tr_rows]], k], pin)
                h = fit_head(d, r, tr_rows, k, lateral)
                xt = d.x[peak[te]]
                prob[te, j] = head_proba(h, xt, lateral)
                if lateral:
                    prob_l[te, j], prob_r[te, j] = h.proba(xt), h.proba(xt[:, MIRROR_INDEX])
                pred[te, j] = prob[te, j] >= t
                thr[f, j] = row_thr[te, j] = t
                bar.update()
    bar.close()
    y, pred = d.y[peak][:, [AUS.index(a) for a in aus]], pred.astype(np.int64)
    f1 = {a: float(f1_score(y[:, j], pred[:, j], zero_division=0)) for j, a in enumerate(aus)}
    out = {"f1": f1, "pred": pred, "prob": prob, "y": y, "subject": d.subject[peak], "thr": thr}
    return out | ({"prob_l": prob_l, "prob_r": prob_r, "row_thr": row_thr, "rows": peak} if lateral else {})


def mean_f1(f1: dict[str, float]) -> float:
    """Mean F1 over :data:`TARGET_AUS` (those present in ``f1``)."""
    return float(np.mean([f1[a] for a in TARGET_AUS if a in f1]))


def bootstrap(res: dict[str, Any], aus: tuple[str, ...], n: int = BOOTSTRAPS, seed: int = 0) -> dict[str, list[float]]:
    """Per-AU (and ``mean_target``) 95 % percentile CIs of F1, resampling subjects with replacement."""
    rng = np.random.default_rng(seed)
    subj = res["subject"]
    uniq = np.unique(subj)
    members = [np.flatnonzero(subj == s) for s in uniq]
    stats = np.zeros((n, len(aus) + 1))
    for b in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
        f1 = dict(zip(aus, f1_fast(res["y"][idx].T, res["pred"][idx].T.astype(bool)), strict=True))
        stats[b] = [*f1.values(), mean_f1(f1)]
    lo, hi = np.percentile(stats, [2.5, 97.5], axis=0)
    return {a: [float(lo[j]), float(hi[j])] for j, a in enumerate([*aus, "mean_target"])}


def cross_validate(d: AuData, r: Recipe, seeds: list[int], aus: tuple[str, ...] = AUS) -> dict[str, Any]:
    """CV of a recipe over ``seeds`` (one repeat each), with CIs on the first: the heads file's ``meta.cv`` record.
    The raw first-repeat results are under the private keys ``_runs0``/``_lat0``."""
    runs = [evaluate(d, r, aus, s) for s in seeds]
    lats = [evaluate(d, r, LATERAL_AUS, s, lateral=True) for s in seeds]
    ci, ci_lat = bootstrap(runs[0], aus), bootstrap(lats[0], LATERAL_AUS)
    cv: dict[str, Any] = {"variant": r.name, "repeats": len(seeds), "outer_folds": 5, "inner_folds": 4, "per_au": {}}
    for j, au in enumerate(aus):
        cv["per_au"][au] = {
            "f1_mean_over_repeats": float(np.mean([x["f1"][au] for x in runs])),
            "f1_repeat0": runs[0]["f1"][au],
            "ci95_repeat0": ci[au],
            "positives": int(runs[0]["y"][:, j].sum()),
            "fold_thresholds_repeat0": [round(float(t), 4) for t in runs[0]["thr"][:, j]],
        }
    for au in LATERAL_AUS:
        cv["per_au"][au + "_lateral_max"] = {
            "f1_mean_over_repeats": float(np.mean([x["f1"][au] for x in lats])),
            "f1_repeat0": lats[0]["f1"][au],
            "ci95_repeat0": ci_lat[au],
        }
    cv["mean_target_f1_per_repeat"] = [mean_f1(x["f1"]) for x in runs]
    cv["mean_target_f1"] = float(np.mean(cv["mean_target_f1_per_repeat"]))
    cv["mean_target_ci95_repeat0"] = ci["mean_target"]
    return cv | {"_runs0": runs[0], "_lat0": lats[0]}


def train_final(d: AuData, r: Recipe, seed: int = 0) -> tuple[AUModel, dict[str, float]]:
    """Heads on all CK+ rows; thresholds from 5-fold subject-grouped OOF predictions on all subjects.

    Runs with the default BLAS threading (unlike the CV): the last bits of the coefficients depend on it, and the
    shipped heads were made that way (single-threaded BLAS moves them by ~1e-11 relative)."""
    rows = np.arange(len(d.x))
    heads: dict[str, AUHead] = {}
    lateral: dict[str, AUHead] = {}
    thrs: dict[str, float] = {}
    for lat, names in ((False, AUS), (True, LATERAL_AUS)):
        for au in tqdm(names, desc=f"final {'lateral' if lat else 'bilateral'} heads", file=sys.stderr, leave=False):
            k = AUS.index(au)
            peak, p = oof_proba(d, r, rows, k, 5, seed, lat)
            t = best_threshold(d.y[peak, k], p)
            h = fit_head(d, r, rows, k, lat)
            logits = h.logit(d.x[d.is_peak & (d.y[:, k] == 1)])
            hi = float(np.percentile(logits, 90)) if len(logits) else 5.0
            feats = tuple(FEATURE_NAMES[i] for i in h.idx)
            (lateral if lat else heads)[au] = AUHead(au, feats, h.mean, h.scale, h.coef, h.intercept, t, hi)
            thrs[au + ("_lateral" if lat else "")] = t
    return AUModel(heads, lateral), thrs


def heads_json(d: AuData, r: Recipe, cv: dict[str, Any], seed: int = 0) -> tuple[str, dict[str, float]]:
    """The heads file's text (``json.dumps(indent=1)``, no trailing newline) and the final thresholds."""
    model, thrs = train_final(d, r, seed)
    frames = "all 3 final frames per sequence with the peak-frame FACS labels" if r.frames == "all" else "peak frames"
    model.meta = {
        "variant": r.meta(),
        "training_data": f"CK+ (ckplus_au): 153 posed sequences, 58 subjects; {frames}"
        + (f"; plus {r.fer_neg} FER2013 train/neutral faces as all-absent negatives" if r.fer_neg else "")
        + f"; crops prepared with {CROP_TAG} (border r|c, pad, size)",
        "target_aus": list(TARGET_AUS),
        "final_thresholds": thrs,
        "cv": {k: v for k, v in cv.items() if not k.startswith("_")},
        "intensity": INTENSITY,
    }
    h = json.loads(json.dumps(model.to_dict()))
    h["neutral_reference"] = np.round(np.median(d.fer, axis=0), 6).tolist()
    h["meta"]["neutral_reference"] = (
        f"median feature vector of the {len(d.fer)} FER2013 train/neutral faces the landmarker fitted (of "
        f"{len(d.fer_files)} sampled with random.Random(0) from the name-sorted files), padded "
        f"{round(100 * STILL_PAD)} % and upscaled to {STILL_SIZE} px"
    )
    return json.dumps(h, indent=1), thrs


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: CV, final heads, card."""
    ap = argparse.ArgumentParser(prog="python -m ferkit.training.au_heads", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for au_heads.json and au_card.json")
    ap.add_argument("--cache", type=Path, default=Path("runs/au_cache"), help="landmark-fit cache folder")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data root (ckplus_au/, fer2013/)")
    ap.add_argument("--seed", type=int, default=0, help="CV seed of the first repeat and of the final thresholds")
    ap.add_argument("--repeats", type=int, default=1, help="CV repeats (seeds seed … seed+N-1)")
    ap.add_argument("--recipe", choices=list(RECIPES), default=DEFAULT.name)
    a = ap.parse_args(argv)
    t0 = time.time()
    d = load_data(a.data, a.cache)
    print(f"data: {len(d.x)} CK+ rows, {len(d.fer)} FER neutral fits ({time.time() - t0:.0f} s)", file=sys.stderr)
    r = RECIPES[a.recipe]
    cv = cross_validate(d, r, list(range(a.seed, a.seed + a.repeats)))
    print(f"CV done ({time.time() - t0:.0f} s)", file=sys.stderr)
    text, thrs = heads_json(d, r, cv, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "au_heads.json").write_text(text, encoding="utf-8")
    model = AUModel.from_dict(json.loads(text))
    c = card(d, r.meta(), cv, thrs, text, a.seed, model)
    (a.out / "au_card.json").write_text(json.dumps(c, indent=1) + "\n", encoding="utf-8")
    print(summary(cv, thrs))
    print(f"wrote {a.out / 'au_heads.json'} (sha256 {c['heads_sha256']}) and au_card.json in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
