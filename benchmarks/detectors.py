"""Detectors on film faces, and which runtime runs YuNet fastest.

``sfew``: every SFEW train image (film frames cropped around one face) through a model (``--model``, the bundled one
by default) with each detector, as ``ferkit evaluate`` scores uncropped photos (detection on the whole image and
tiles, alignment onto the detector's own template unless ``--template`` names one, calibrated model): images where
no face was found, and accuracy (a miss counts as wrong). ``backend``: milliseconds per YuNet call with
``cv2.FaceDetectorYN`` (the fixed 640×640 file; OpenCV cannot load the dynamic ones) against onnxruntime (both
dynamic files, the whole call: resize, network, decoding, NMS; all cores or one thread) at several frame sizes, in
one process.

    python benchmarks/detectors.py sfew [--data ../shared/data/sfew/train] [--detectors blazeface,...,yunet]
        [--model ferkit] [--template fer|fer_blazeface|...]
    python benchmarks/detectors.py backend [--models ../shared/models] [--repeat 30]
    python benchmarks/detectors.py tracking-cpu [--video ../shared/data/videos/woman_talking.mp4] [--repeat 3]
    python benchmarks/detectors.py gate [--fer ../shared/data/fer2013/test] [--per-class 300]
    python benchmarks/detectors.py clips [--data ../shared/data/video_labelled] [--model ferkit,ferkit-au,...]
        [--detectors yunet,blazeface] [--template fer|fer_blazeface|...]

``gate``: the shipped gate (``ferkit-gate``: expressive vs neutral) on FER2013 test faces made into photos as in
``alignment_choice.py`` and on SFEW train, found and aligned as before issue 16 (BlazeFace, its template), now
(YuNet, its template) and with BlazeFace on YuNet's template: balanced accuracy against neutral = the ``neutral``
folder; a face not found counts as wrong.

``clips``: each model on the labelled talking clips through ``ferkit evaluate`` (5 fps, as shipped: calibrated,
smoothed frame labels, clip = majority label) with each detector: frame and clip accuracy and macro-F1.

``tracking-cpu``: process CPU milliseconds per frame of decoding + ``FaceTracker`` (default options) with YuNet and
with BlazeFace, interleaved: CPU time, unlike wall time, barely moves when other jobs share the machine.

Results: printed + benchmarks/results/detectors_<what>[_<model>][_<template>].json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DETECTORS = "blazeface,blazeface_full,mesh,haar,yunet"
CLIP_MODELS = "ferkit,ferkit-au,ferkit-wild"


def sfew(data: Path, detectors: list[str], model_name: str = "ferkit", template: str | None = None) -> dict:
    """No-face counts and accuracy of a model on SFEW train with each detector (and its own template by default)."""
    from ferkit.evaluation.scoring import NO_FACE, predict_dataset
    from ferkit.faces.detectors import detector_template
    from ferkit.models.loading import load_model

    model = load_model(model_name)
    out = {}
    for name in detectors:
        t0 = time.perf_counter()
        p = predict_dataset(model, data, crops=False, detector=name, template=template)
        n = len(p.y_true)
        out[name] = {
            "template": template or detector_template(name),
            "images": n,
            "no_face": sum(y == NO_FACE for y in p.y_pred),
            "accuracy": round(float(np.mean([a == b for a, b in zip(p.y_true, p.y_pred, strict=True)])), 4),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(name, out[name], flush=True)
    return out


def backend(models: Path, repeat: int) -> dict:
    """Milliseconds per detection call for cv2.FaceDetectorYN and onnxruntime at a few frame sizes."""
    from ferkit.faces.yunet import YuNet

    still = cv2.imread(str(next((SHARED / "data" / "sfew" / "train" / "happy").iterdir())))
    files = {
        "onnxruntime 2023mar_dynamic": "face_detection_yunet_2023mar_dynamic.onnx",
        "onnxruntime n_dynamic": "face_detection_yunet_n_dynamic.onnx",
    }
    out: dict[str, dict[str, float]] = {}
    for w, h in [(320, 320), (640, 360), (960, 540), (1920, 1080)]:
        bgr = cv2.resize(still, (w, h))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        cv = cv2.FaceDetectorYN.create(str(models / "face_detection_yunet_2023mar.onnx"), "", (w, h), 0.6, 0.3, 5000)
        calls = {"cv2.FaceDetectorYN 2023mar": lambda cv=cv, bgr=bgr: cv.detect(bgr)}
        for label, f in files.items():
            sha = hashlib.sha256((models / f).read_bytes()).hexdigest()
            for threads in (0, 1):
                det = YuNet(max_side=max(w, h), model=models / f, sha256=sha, threads=threads)
                calls[label + (", 1 thread" if threads else "")] = lambda det=det, rgb=rgb: det.detect(rgb)
        for label, call in calls.items():
            call()
            t0 = time.perf_counter()
            for _ in range(repeat):
                call()
            out.setdefault(label, {})[f"{w}x{h}"] = round((time.perf_counter() - t0) / repeat * 1000, 2)
        print(f"{w}x{h}", {k: v[f"{w}x{h}"] for k, v in out.items()}, flush=True)
    return out


def tracking_cpu(video: Path, repeat: int) -> dict:
    """CPU ms per frame (all threads of this process) of decoding + tracking, per detector, each repeat."""
    import resource

    from ferkit.faces.detectors import create_detector
    from ferkit.faces.tracking import FaceTracker
    from ferkit.media.video import iter_video

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    out: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name in ("yunet", "blazeface"):
            det = create_detector(name)
            tracker = FaceTracker(det)
            c0, n = cpu(), 0
            for f in iter_video(video, None):
                tracker.update(f)
                n += 1
            out.setdefault(name, []).append(round((cpu() - c0) / n * 1000, 3))
            det.close()
    print(out)
    return out


def _fer_photos(fer: Path, per_class: int) -> tuple[list[np.ndarray], list[str]]:
    """FER2013 test faces made into photos as in ``alignment_choice.py`` (RGB), and their folder names."""
    photos, folders = [], []
    for cdir in sorted(fer.iterdir()):
        for p in sorted(cdir.iterdir())[:per_class]:
            gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            pad = gray.shape[0] // 4
            big = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            photos.append(
                cv2.cvtColor(cv2.resize(big, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
            )
            folders.append(cdir.name)
    return photos, folders


def _sfew_photos(sfew: Path) -> tuple[list[np.ndarray], list[str]]:
    from ferkit.media.images import read_image

    files = sorted(p for p in sfew.glob("*/*") if p.is_file())
    return [read_image(p) for p in files], [p.parent.name for p in files]


def gate(fer: Path, per_class: int, sfew: Path) -> dict:
    """Balanced accuracy of ferkit-gate on FER2013-as-photos and on SFEW train with the old and the new detector +
    template (a face not found counts as wrong)."""
    from sklearn.metrics import balanced_accuracy_score

    from ferkit.faces.align import align_face, to_channels
    from ferkit.faces.detectors import create_detector
    from ferkit.models.loading import load_model

    model = load_model("ferkit-gate")
    out: dict[str, dict] = {}
    for data, (photos, folders) in (("fer2013_photos", _fer_photos(fer, per_class)), ("sfew", _sfew_photos(sfew))):
        truth = ["neutral" if f == "neutral" else "expressive" for f in folders]
        for label, name, template in (
            ("before: blazeface", "blazeface", "fer_blazeface"),
            ("now: yunet", "yunet", "fer"),
            ("blazeface, yunet's template", "blazeface", "fer"),
        ):
            det = create_detector(name)
            crops, pred = {}, np.array(["__no_face__"] * len(photos), dtype=object)
            for i, photo in enumerate(photos):
                faces = det.detect_still(photo)
                if faces:
                    crops[i] = align_face(to_channels(photo, model.channels), faces[0], model.input_size, template)[0]
            probs = model.predict_proba(np.stack(list(crops.values())))
            pred[list(crops)] = [model.classes[j] for j in probs.argmax(1)]
            out.setdefault(data, {})[label] = {
                "n": len(photos),
                "misses": len(photos) - len(crops),
                "balanced_accuracy": round(float(balanced_accuracy_score(truth, pred)), 4),
            }
            print(data, label, out[data][label], flush=True)
            det.close()
    return out


def _pick(block: dict) -> dict:
    return {k: round(block[k], 4) if isinstance(block[k], float) else block[k] for k in ("n", "accuracy", "macro_f1")}


def clips(data: Path, models: list[str], detectors: list[str], template: str | None = None) -> dict:
    """Each model on the labelled talking clips (``ferkit evaluate``: 5 fps, as shipped) with each detector, aligned
    onto its own template or onto ``template`` (set on the detector class for the run: ``evaluate`` takes none)."""
    from ferkit.api import evaluate
    from ferkit.faces.detectors import DETECTORS

    out: dict[str, dict] = {}
    for m in models:
        for d in detectors:
            own = DETECTORS[d].template
            DETECTORS[d].template = template or own
            try:
                b = evaluate(data, models=[m], detector=d)["results"][0]
            finally:
                DETECTORS[d].template = own
            out.setdefault(m, {})[d] = {
                "frames": _pick(b),
                "clips": _pick(b["clip_level"]),
                "per_clip": {r["true"]: r["predicted"] for r in b["per_clip"]},
            }
            print(m, d, out[m][d], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sfew", "backend", "tracking-cpu", "gate", "clips"])
    ap.add_argument("--fer", default=str(SHARED / "data" / "fer2013" / "test"))
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--video", default=str(SHARED / "data" / "videos" / "woman_talking.mp4"))
    ap.add_argument("--data", default=None, help="sfew, gate: SFEW train; clips: the labelled clips")
    ap.add_argument("--detectors", default=None, help=f"default: {DETECTORS} (clips: yunet,blazeface)")
    ap.add_argument("--model", default=None, help="sfew: one model (ferkit); clips: several (ferkit,ferkit-au,...)")
    ap.add_argument("--template", default=None, help="sfew, clips: one template for every detector (default: its own)")
    ap.add_argument("--models", default=str(SHARED / "models"))
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    name = args.what
    given = (("model", args.model), ("template", args.template), ("detectors", args.detectors))
    command = f"python benchmarks/detectors.py {args.what}" + "".join(f" --{k} {v}" for k, v in given if v)
    sfew_dir = Path(args.data or SHARED / "data" / "sfew" / "train")
    if args.what == "sfew":
        model = args.model or "ferkit"
        res = sfew(sfew_dir, (args.detectors or DETECTORS).split(","), model, args.template)
        doc = {"command": command, "model": model, "results": res}
        name += "".join(f"_{v}" for v in (args.model, args.template) if v and v != "ferkit")
    elif args.what == "gate":
        res = gate(Path(args.fer), args.per_class, sfew_dir)
        doc = {"command": f"python benchmarks/detectors.py gate --per-class {args.per_class}", "results": res}
    elif args.what == "clips":
        models = (args.model or CLIP_MODELS).split(",")
        res = clips(
            Path(args.data or SHARED / "data" / "video_labelled"),
            models,
            (args.detectors or "yunet,blazeface").split(","),
            args.template,
        )
        doc = {"command": command, "results": res}
        name += "".join(f"_{v}" for v in (args.detectors, args.template) if v)
    elif args.what == "tracking-cpu":
        res = tracking_cpu(Path(args.video), min(args.repeat, 3))
        doc = {"command": "python benchmarks/detectors.py tracking-cpu --repeat 3", "cpu_ms_per_frame": res}
    else:
        ms = backend(Path(args.models), args.repeat)
        doc = {"command": f"python benchmarks/detectors.py backend --repeat {args.repeat}", "ms_per_call": ms}
    doc["machine"] = f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores"
    out = HERE / "results" / f"detectors_{name}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
