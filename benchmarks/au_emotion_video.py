"""Single image vs video: ``ferkit-au`` (emotion from AUs) and the bundled frame classifier ``ferkit`` on every frame
of the shared clips, in one analysis run per clip (``ferkit.analyze(clip, fps=None, model=["ferkit-au", "ferkit"])``:
both models score the same aligned faces; the record's ``models`` keeps each model's output).

    python benchmarks/au_emotion_video.py [--fps all|12.5] [--clips NAME ...]

Per clip and model: label switches per minute of face time (sum over face tracks; a track's time is its number of
face frames × the frame interval), raw (each frame's argmax) and smoothed (the pipeline's smoother, tau 0.5 s,
margin 0.1, 3 frames, run per track on each model's own probabilities); the two models' agreement on raw and on
smoothed labels; each model's label shares; the share of face frames ferkit-au could not fit (its fallback
distribution). The clips have no labels: stability and agreement are what is measured, not accuracy.
Writes ``benchmarks/results/au_emotion_video.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from au_features_cache import DATA

from ferkit.analysis.smoothing import count_switches, smooth_sequence
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "au_emotion_video.json"
MODELS = ("ferkit-au", "ferkit")


def timelines(records: list[dict], model: str, classes: list[str]) -> dict[Any, dict[str, Any]]:
    """Per face track: timestamps, raw labels and smoothed labels of one model."""
    tracks: dict[Any, list[dict]] = defaultdict(list)
    for r in records:
        if r.get("models"):
            tracks[r["face_id"]].append(r)
    out = {}
    for tid, recs in tracks.items():
        t = [r["timestamp"] for r in recs]
        probs = np.array([[r["models"][model]["probabilities"][c] for c in classes] for r in recs])
        smooth, _ = smooth_sequence(t, probs)
        out[tid] = {"t": t, "raw": [classes[int(k)] for k in probs.argmax(1)],
                    "smoothed": [classes[k] for k in smooth], "probs": probs}  # fmt: skip
    return out


def measure(records: list[dict], classes: list[str], fallback: np.ndarray) -> dict[str, Any]:
    """Switches per minute, agreement and label shares of both models on one clip's records."""
    lines = {m: timelines(records, m, classes) for m in MODELS}
    tracks = lines[MODELS[0]]
    times = sorted({r["timestamp"] for r in records})
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 0.04
    minutes = sum(len(v["t"]) for v in tracks.values()) * dt / 60
    out: dict[str, Any] = {"face_frames": sum(len(v["t"]) for v in tracks.values()), "tracks": len(tracks),
                           "face_minutes": round(minutes, 3)}  # fmt: skip
    if not tracks:
        return out
    for m in MODELS:
        raw = sum(count_switches(v["raw"]) for v in lines[m].values())
        smooth = sum(count_switches(v["smoothed"]) for v in lines[m].values())
        labels = Counter(x for v in lines[m].values() for x in v["raw"])
        out[m] = {
            "switches_per_min_raw": round(raw / minutes, 2),
            "switches_per_min_smoothed": round(smooth / minutes, 2),
            "label_shares": {c: round(n / out["face_frames"], 3) for c, n in labels.most_common()},
        }
    for kind in ("raw", "smoothed"):
        same = [
            a == b
            for tid in tracks
            for a, b in zip(lines[MODELS[0]][tid][kind], lines[MODELS[1]][tid][kind], strict=True)
        ]
        out[f"agreement_{kind}"] = round(float(np.mean(same)), 3)
    au_probs = np.vstack([v["probs"] for v in tracks.values()])
    out["ferkit-au"]["unfitted_share"] = round(float(np.mean(np.abs(au_probs - fallback).max(1) < 1e-4)), 3)
    return out


def main() -> None:
    import ferkit

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fps", default="all", help="'all' (every frame) or a rate")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--clips", nargs="*", help="clip file names (default: every clip in clips/ + woman_talking)")
    a = ap.parse_args()
    fps = None if a.fps == "all" else float(a.fps)
    clips = sorted(p for p in (a.data / "clips").iterdir() if p.suffix in (".mp4", ".mov"))
    clips.append(a.data / "videos" / "woman_talking.mp4")
    if a.clips:
        clips = [c for c in clips if c.name in a.clips]
    au = load_model("ferkit-au")
    classes, fallback = list(au.classes), au.head.fallback  # type: ignore[attr-defined]
    rows, t0 = [], time.time()
    for clip in clips:
        t = time.time()
        recs = ferkit.analyze(clip, fps=fps, model=list(MODELS))
        row = {"clip": clip.name, "secs": round(time.time() - t, 1)} | measure(recs, classes, fallback)
        rows.append(row)
        print(json.dumps(row), flush=True)
    face = [r for r in rows if r.get("tracks")]
    minutes = sum(r["face_minutes"] for r in face)
    summary: dict[str, Any] = {"clips_with_faces": len(face), "face_frames": sum(r["face_frames"] for r in face)}
    for m in MODELS:
        for kind in ("raw", "smoothed"):
            key = f"switches_per_min_{kind}"
            summary[f"{m} {key} (mean over clips)"] = round(float(np.mean([r[m][key] for r in face])), 2)
            pooled = sum(r[m][key] * r["face_minutes"] for r in face) / minutes
            summary[f"{m} {key} (pooled)"] = round(pooled, 2)
    for kind in ("raw", "smoothed"):
        pooled = sum(r[f"agreement_{kind}"] * r["face_frames"] for r in face) / summary["face_frames"]
        summary[f"agreement_{kind} (pooled over frames)"] = round(pooled, 3)
    secs = sum(r["secs"] for r in rows)
    result = {"command": f"python benchmarks/au_emotion_video.py --fps {a.fps}", "fps": a.fps, "summary": summary,
              "two_model_run_secs": round(secs, 1), "clips": rows}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    print(f"wrote {RESULTS} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
