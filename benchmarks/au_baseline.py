"""Effect of the per-track neutral baseline on AU estimates in video (``ferkit analyze --aus``, default on).

    python benchmarks/au_baseline.py [--fps 10]

Talking-head clips (``clips/styletalk_*``, ``clips/edtalk_*``, ``videos/woman_talking.mp4``) have no AU labels, so two
proxies are measured per clip, with the baseline on and off (same frames, same fits):

* false upper-face AU rate: on frames the bundled emotion model calls *neutral*, the share with any upper-face
  emotion AU present (AU1, 2, 4, 5, 6, 7, 9) — lower is better, these faces are talking, not emoting;
* kept smiles: on frames it calls *happy*, the share with AU12 present — should not drop.

The labelled talking clips (``video_labelled``, evaluation only; nothing here was tuned on them) are reported the
same way: the neutral clip's false rate and each emotion clip's rate of its prototype AUs. Results:
benchmarks/results/au_baseline.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
UPPER = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09")
#: Prototype AUs per emotion (EMFACS-style), to report how often a labelled clip shows its own emotion's AUs.
PROTOTYPE = {
    "happy": ("AU06", "AU12"),
    "sad": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU20"),
    "angry": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15", "AU10"),
    "contempt": ("AU12_L", "AU12_R", "AU14_L", "AU14_R"),
}


def measure(records: list[dict]) -> dict[str, float | int | None]:
    faces = [r for r in records if r.get("aus")]
    neutral = [r for r in faces if r["emotion"] == "neutral"]
    happy = [r for r in faces if r["emotion"] == "happy"]
    false_rate = np.mean([any(r["aus"][k] >= 0.5 for k in UPPER) for r in neutral]) if neutral else None
    smiles = np.mean([r["aus"]["AU12"] >= 0.5 for r in happy]) if happy else None
    return {
        "faces": len(faces),
        "neutral_frames": len(neutral),
        "false_upper_au_rate_on_neutral": None if false_rate is None else round(float(false_rate), 3),
        "happy_frames": len(happy),
        "au12_rate_on_happy": None if smiles is None else round(float(smiles), 3),
    }


def prototype_rate(records: list[dict], emotion: str) -> float | None:
    """Share of face frames showing at least half of the emotion's prototype AUs."""
    keys = PROTOTYPE.get(emotion)
    faces = [r for r in records if r.get("aus")]
    if not keys or not faces:
        return None
    hits = [sum(r["aus"][k] >= 0.5 for k in keys) >= max(1, len(keys) // 2) for r in faces]
    return round(float(np.mean(hits)), 3)


def main() -> None:
    import ferkit

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", type=float, default=10.0)
    args = ap.parse_args()
    clips = sorted((DATA / "clips").glob("styletalk_*.mp4")) + sorted((DATA / "clips").glob("edtalk_*.mp4"))
    clips.append(DATA / "videos" / "woman_talking.mp4")
    rows = []
    for clip in clips:
        row = {"clip": clip.name}
        for base in (True, False):
            recs = ferkit.analyze(clip, fps=args.fps, aus=True, au_baseline=base)
            row["baseline" if base else "none"] = measure(recs)
        rows.append(row)
        print(clip.name, json.dumps(row["baseline"]), json.dumps(row["none"]), flush=True)
    labelled = []
    for clip in sorted((DATA / "video_labelled").glob("*/*.mp4")):
        emotion = clip.parent.name
        row = {"clip": f"{emotion}/{clip.name}", "emotion": emotion}
        for base in (True, False):
            recs = ferkit.analyze(clip, fps=args.fps, aus=True, au_baseline=base)
            row["baseline" if base else "none"] = {**measure(recs), "prototype_rate": prototype_rate(recs, emotion)}
        labelled.append(row)
        print(row["clip"], json.dumps(row["baseline"]), json.dumps(row["none"]), flush=True)

    def mean(key: str, mode: str, items: list[dict]) -> float | None:
        vals = [r[mode][key] for r in items if r[mode][key] is not None]
        return round(float(np.mean(vals)), 3) if vals else None

    summary = {
        mode: {
            "false_upper_au_rate_on_neutral (mean over clips)": mean("false_upper_au_rate_on_neutral", mode, rows),
            "au12_rate_on_happy (mean over clips)": mean("au12_rate_on_happy", mode, rows),
            "video_labelled neutral false rate": next(
                (r[mode]["false_upper_au_rate_on_neutral"] for r in labelled if r["emotion"] == "neutral"), None
            ),
            "video_labelled prototype rate (mean over emotion clips)": mean(
                "prototype_rate", mode, [r for r in labelled if r["emotion"] != "neutral"]
            ),
        }
        for mode in ("baseline", "none")
    }
    print(json.dumps(summary, indent=1))
    doc = {"command": f"python benchmarks/au_baseline.py --fps {args.fps}", "summary": summary, "clips": rows}
    doc["video_labelled"] = labelled
    out = HERE / "results" / "au_baseline.json"
    out.write_text(json.dumps(doc, indent=1))
    print(out)


if __name__ == "__main__":
    main()
