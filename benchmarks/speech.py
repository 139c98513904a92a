"""Visual speech (``speaking`` of ``ferkit analyze --aus``) against an audio voice-activity reference.

    python benchmarks/speech.py [--fps all,12.5,8.33,5] [--au-fps 15]

For each clip with speech audio (``edtalk_pose_source2``, ``edtalk_uncrop_Obama``) and each sampling rate, the clip
is analysed with ``--aus`` (the shipped pipeline: tracking, landmarker crops at most ``--au-fps`` fits per second
per face, the frames between holding the last answer, per-track detector) and every face
frame's ``speaking >= 0.5`` is compared with the clip's own energy-based voice activity (``ferkit.media.audio``) at
the frame's time: balanced accuracy (an always-speaking answer scores 0.5), the lag that maximises the
cross-correlation of P(speaking) with the audio track (+: the visual answer comes later), and the share of frames
called speaking. The shipped coefficients were fitted on these two clips, so those rows are in-sample; the
``held-out`` rows refit the detector (``fit_model``) on the other clip only, from the same mouth features. Clips whose
audio holds no usable speech (pyfeat_single_face: background noise; pyfeat_WolfgangLanger_Pexels: silence;
stage_hamilton: rap over piano) report the share called speaking only. Results: benchmarks/results/speech.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLIPS = HERE.parent.parent / "shared" / "data" / "clips"
SPEECH = ("edtalk_pose_source2", "edtalk_uncrop_Obama")
OTHER = ("pyfeat_single_face", "pyfeat_WolfgangLanger_Pexels", "stage_hamilton")


def analyse(
    clip: Path, fps: float | None, au_fps: float | None = 15.0
) -> tuple[list[dict], list[tuple[int, float, object]]]:
    """Records of an --aus run, and every (face_id, t, mouth features or None) the speech detector saw."""
    import ferkit
    from ferkit.analysis import au_tracks

    seen: list[tuple[int, float, object]] = []
    original = au_tracks.AuTracks.update

    def spy(self, face_id, t, fit):
        if t is not None and not isinstance(fit, au_tracks.Held):
            seen.append((face_id, t, fit.mouth if fit is not None else None))
        return original(self, face_id, t, fit)

    au_tracks.AuTracks.update = spy
    try:
        records = ferkit.analyze(clip, fps=fps, aus=True, au_fps=au_fps)
    finally:
        au_tracks.AuTracks.update = original
    return records, seen


def lag_ms(times: np.ndarray, prob: np.ndarray, ref: np.ndarray) -> float | None:
    """Lag (ms) maximising the cross-correlation of ``prob`` with ``ref`` on a 10 ms grid (+: visual later)."""
    if len(times) < 10 or ref.std() == 0:
        return None
    grid = np.arange(times[0], times[-1], 0.01)
    p, r = np.interp(grid, times, prob), np.interp(grid, times, ref.astype(float))
    p, r = p - p.mean(), r - r.mean()
    lags = np.arange(-50, 51)
    scores = [np.dot(p[max(0, k) : len(p) + min(0, k)], r[max(0, -k) : len(r) - max(0, k)]) for k in lags]
    return float(lags[int(np.argmax(scores))] * 10)


def score(times: np.ndarray, prob: np.ndarray, clip: Path) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    from ferkit.media.audio import activity_at, audio_vad

    track = audio_vad(clip)
    ref = activity_at(track, times)
    return {
        "frames_scored": len(times),
        "vad_active": round(float(ref.mean()), 3),
        "balanced_accuracy": round(float(balanced_accuracy_score(ref, prob >= 0.5)), 3),
        "delay_ms": lag_ms(times, prob, ref),
        "speaking_share": round(float((prob >= 0.5).mean()), 3),
    }


def replay(seen: list[tuple[int, float, object]], model) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Run fresh detectors (with ``model``) over recorded mouth features; (times, probs, rates, their times)."""
    from ferkit.faces.speech import SpeechDetector

    detectors: dict[int, SpeechDetector] = {}
    times, probs, rates, rate_times = [], [], [], []
    for face_id, t, mouth in seen:
        det = detectors.setdefault(face_id, SpeechDetector(model=model))
        r = det.rates(t, mouth)
        if r is not None:
            times.append(t)
            probs.append(model.probability(*r))
            rates.append(r)
            rate_times.append(t)
    return np.array(times), np.array(probs), rates, rate_times


def main() -> None:
    from ferkit.faces.speech import DEFAULT_MODEL, fit_model
    from ferkit.media.audio import activity_at, audio_vad

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", default="all,12.5,8.33,5")
    ap.add_argument("--au-fps", default="15", help="landmarker fits per face per second ('all': every frame)")
    args = ap.parse_args()
    rates = [None if f == "all" else float(f) for f in args.fps.split(",")]
    au_fps = None if args.au_fps == "all" else float(args.au_fps)
    rows, seen_by = [], {}
    for name in SPEECH:
        clip = CLIPS / f"{name}.mp4"
        for fps in rates:
            records, seen = analyse(clip, fps, au_fps)
            seen_by[name, fps] = seen
            faces = [r for r in records if r.get("speaking") is not None]
            times = np.array([r["timestamp"] for r in faces])
            prob = np.array([r["speaking"] for r in faces])
            row = {"clip": name, "fps": fps or "all", "model": "shipped (in-sample)", **score(times, prob, clip)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for name in SPEECH:  # leave-one-clip-out: fit on the other clip's frames (all rates), score this one
        other = next(n for n in SPEECH if n != name)
        lip, blend, label = [], [], []
        for fps in rates:
            _, _, r, rt = replay(seen_by[other, fps], DEFAULT_MODEL)
            ref = activity_at(audio_vad(CLIPS / f"{other}.mp4"), np.array(rt))
            lip += [a for a, _ in r]
            blend += [b for _, b in r]
            label += list(ref)
        model = fit_model(np.array(lip), np.array(blend), np.array(label))
        for fps in rates:
            times, prob, _, _ = replay(seen_by[name, fps], model)
            row = {"clip": name, "fps": fps or "all", "model": f"held-out (fit on {other})", **score(times, prob,
                   CLIPS / f"{name}.mp4")}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    for name in OTHER:
        clip = next(iter(sorted(CLIPS.glob(f"{name}.*"))))
        records, _ = analyse(clip, None, au_fps)
        faces = [r for r in records if r.get("speaking") is not None]
        share = float(np.mean([r["speaking"] >= 0.5 for r in faces])) if faces else None
        row = {"clip": name, "fps": "all", "frames_scored": len(faces), "speaking_share": share}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = HERE / "results" / ("speech.json" if args.au_fps == "all" else f"speech_au_fps{args.au_fps}.json")
    command = f"python benchmarks/speech.py --fps {args.fps} --au-fps {args.au_fps}"
    out.write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    print(out)


if __name__ == "__main__":
    main()
