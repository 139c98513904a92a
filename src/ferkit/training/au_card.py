"""The AU heads' model card (``au_card.json``) and the Markdown summary table of a cross-validation."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ferkit.faces.au_features import MIRROR_INDEX
from ferkit.faces.au_heads import AU43_BLINK_MIN, AU43_OPEN_MAX, AUModel
from ferkit.faces.aus import STILL_PAD, STILL_SIZE
from ferkit.faces.landmarker import LANDMARKER_SHA256
from ferkit.training.au_data import (
    BOOTSTRAPS,
    INTENSITY,
    LATERAL_AUS,
    TARGET_AUS,
    TARGET_MEAN_F1,
    AuData,
    files_digest,
)


def left_right(d: AuData, model: AUModel, lat0: dict[str, Any]) -> dict[str, Any]:
    """Mirror consistency of the lateral heads on real mirrored CK+ images (all 459, final heads) and how often the
    out-of-fold lateral outputs fire on one side only, on contempt vs other peak frames."""
    out: dict[str, Any] = {
        "note": "mirrored_images: final heads on all 459 CK+ crops and their flipped copies (a symmetry check on "
        "training images, not accuracy); one_side_only_oof: outer-CV (repeat 0) lateral outputs on the 153 peak "
        "frames with each fold's threshold",
        "mirrored_images": {},
        "one_side_only_oof": {},
    }
    xm_r = d.x_mirror[:, MIRROR_INDEX]  # feeding this to a head gives the mirror image's right-side output
    for au, h in model.lateral.items():
        p_l, p_r_m = h.proba(d.x), h.proba(xm_r)
        out["mirrored_images"][au] = {
            "mean_abs_L(x)-R(mirror x)": round(float(np.mean(np.abs(p_l - p_r_m))), 4),
            "decision_agreement": round(float(np.mean((p_l >= h.threshold) == (p_r_m >= h.threshold))), 4),
            "mean_abs_L(x)-R(x)": round(float(np.mean(np.abs(p_l - h.proba(d.x[:, MIRROR_INDEX])))), 4),
        }
    emo = d.emotion[lat0["rows"]]
    for j, au in enumerate(LATERAL_AUS):
        left, right = lat0["prob_l"][:, j] >= lat0["row_thr"][:, j], lat0["prob_r"][:, j] >= lat0["row_thr"][:, j]
        for group, m in (
            ("contempt", emo == "contempt"),
            ("other_with_au", (emo != "contempt") & (lat0["y"][:, j] == 1)),
        ):
            n_any = int((left | right)[m].sum())
            out["one_side_only_oof"][f"{au}_{group}"] = {
                "n": int(m.sum()),
                "fired": n_any,
                "one_side_only": int((left ^ right)[m].sum()),
                "labelled_present": int(lat0["y"][m, j].sum()),
            }
    return out


def card(
    d: AuData, r: dict[str, Any], cv: dict[str, Any], thrs: dict[str, float], text: str, seed: int, model: AUModel
) -> dict[str, Any]:
    """The model card: config (``r``: ``Recipe.meta()``), data and split, fit rates, per-AU CV figures with CIs,
    left/right checks and caveats. ``text`` is the heads file's content (hashed)."""
    per_au = {
        au: {
            "f1": round(v["f1_mean_over_repeats"], 4),
            "ci95": [round(c, 4) for c in v["ci95_repeat0"]],
            "positives": v.get("positives"),
            "threshold": round(thrs[au.replace("_max", "")], 4),
        }
        for au, v in cv["per_au"].items()
    }
    n_seq, n_subj = len(set(d.seq)), len(set(d.subject))
    return {
        "heads_file": "au_heads.json",
        "heads_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "config": {
            "recipe": r["name"],
            "model": "LogisticRegression (lbfgs, max_iter 5000) on standardised features",
            "C": r["c"],
            "class_weight": "balanced" if r["balanced"] else None,
            "frames": "all 3 CK+ frames per sequence, peak labels" if r["frames"] == "all" else "CK+ peak frames",
            "negatives": f"{r['fer_neg']} FER2013 train/neutral faces, all AUs absent",
            "lateral_heads": list(LATERAL_AUS),
            "lateral_features": "subject's-left + midline, mirrored rows added",
            "crop": {
                "function": "ferkit.faces.landmarker.prepare_crop",
                "pad": STILL_PAD,
                "size": STILL_SIZE,
                "border": "replicate",
                "landmarker_sha256": LANDMARKER_SHA256,
            },
        },
        "seed": seed,
        "repeats": cv["repeats"],
        "data": {
            "ckplus": {
                "images": len(d.x),
                "sequences": n_seq,
                "subjects": n_subj,
                "evaluated_rows": "peak frames",
                "source": "shared/data/ckplus_au (labels.csv: FACS codes of the peak frame)",
            },
            "fer_neutral": {
                "folder": "fer2013/train/neutral",
                "selection": "random.Random(0).sample(name-sorted files, 600), sorted",
                "files_sha256": files_digest(d.fer_files),
                "fits": d.fer_fits,
                "negatives_used": min(r["fer_neg"], len(d.fer)),
                "files": d.fer_files,
            },
        },
        "split": {
            "outer": "CK+ subject-grouped 5-fold (GroupKFold shuffle, random_state = seed + repeat)",
            "inner": "subject-grouped 4-fold on the outer training subjects; F1-maximising threshold",
            "final_thresholds": "subject-grouped 5-fold OOF on all subjects",
            "ci": f"{BOOTSTRAPS} bootstrap resamples of subjects (repeat 0), percentile 95 %",
        },
        "landmarker_fit_rate": {
            "ckplus": {"fits": d.ck_fits, "n": len(d.x), "rate": round(d.ck_fits / len(d.x), 4)},
            "fer_neutral": {"fits": d.fer_fits, "n": len(d.fer_files)},
        },
        "metrics": {
            "per_au": per_au,
            "target_aus": list(TARGET_AUS),
            "mean_target_f1": round(cv["mean_target_f1"], 4),
            "mean_target_ci95": [round(c, 4) for c in cv["mean_target_ci95_repeat0"]],
            "target": TARGET_MEAN_F1,
            "meets_target": cv["mean_target_f1"] >= TARGET_MEAN_F1,
        },
        "thresholds": {k: round(v, 4) for k, v in thrs.items()},
        "left_right": left_right(d, model, cv["_lat0"]),
        "intensity": INTENSITY + "; CK+ has no intensity codes",
        "au43": {
            "rule": f"both eyeBlink >= {AU43_BLINK_MIN} and both eye apertures <= {AU43_OPEN_MAX} IOD",
            "validated": False,
        },
        "limitations": [
            "CK+ is posed, frontal, 48x48 grayscale; 58 subjects",
            "thresholds and CV on the same 153 sequences (nested CV keeps them apart per fold)",
            "intensity uncalibrated, AU43 unvalidated",
        ],
    }


def summary(cv: dict[str, Any], thrs: dict[str, float] | None = None) -> str:
    """Markdown table: per AU F1, 95 % CI, positives, threshold; then the target mean."""
    lines = ["| AU | F1 | 95 % CI | positives | threshold |", "|---|---|---|---|---|"]
    for au, v in cv["per_au"].items():
        t = (thrs or {}).get(au.replace("_max", ""))
        lo, hi = v["ci95_repeat0"]
        pos = v.get("positives", "")
        lines.append(
            f"| {au} | {v['f1_mean_over_repeats']:.3f} | {lo:.2f}–{hi:.2f} | {pos} | "
            + (f"{t:.3f} |" if t is not None else "|")
        )
    lo, hi = cv["mean_target_ci95_repeat0"]
    mark = "≥" if cv["mean_target_f1"] >= TARGET_MEAN_F1 else "<"
    lines.append(
        f"\nMean F1 over {len(TARGET_AUS)} target AUs: **{cv['mean_target_f1']:.3f}** (95 % CI {lo:.2f}–"
        f"{hi:.2f}; target {mark} {TARGET_MEAN_F1})"
    )
    return "\n".join(lines)
