"""Detectors on film faces, and which runtime runs YuNet fastest.

``sfew``: every SFEW train image (film frames cropped around one face) through the bundled model with each detector,
as ``ferkit evaluate`` scores uncropped photos (detection on the whole image and tiles, alignment, calibrated model):
images where no face was found, and accuracy (a miss counts as wrong). ``backend``: milliseconds per YuNet call
with ``cv2.FaceDetectorYN`` (the fixed 640×640 file; OpenCV cannot load the dynamic ones) against onnxruntime
(both dynamic files, the whole call: resize, network, decoding, NMS; all cores or one thread) at several frame
sizes, in one process.

    python benchmarks/detectors.py sfew [--data ../shared/data/sfew/train] [--detectors blazeface,...,yunet]
    python benchmarks/detectors.py backend [--models ../shared/models] [--repeat 30]
    python benchmarks/detectors.py tracking-cpu [--video ../shared/data/videos/woman_talking.mp4] [--repeat 3]
    python benchmarks/detectors.py gate [--fer ../shared/data/fer2013/test] [--per-class 300]

``gate``: the shipped gate (``ferkit-gate``: expressive vs neutral) on FER2013 test faces made into photos as in
``alignment_choice.py``, found and aligned as before issue 16 (BlazeFace, its template) and now (YuNet, its
template): balanced accuracy against neutral = the ``neutral`` folder; a face not found counts as wrong.

``tracking-cpu``: process CPU milliseconds per frame of decoding + ``FaceTracker`` (default options) with YuNet and
with BlazeFace, interleaved: CPU time, unlike wall time, barely moves when other jobs share the machine.

Results: printed + benchmarks/results/detectors_sfew.json, detectors_backend.json.
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


def sfew(data: Path, detectors: list[str]) -> dict:
    """No-face counts and accuracy of the bundled model on SFEW train with each detector."""
    from ferkit.evaluation.scoring import NO_FACE, predict_dataset
    from ferkit.models.loading import load_model

    model = load_model("ferkit")
    out = {}
    for name in detectors:
        t0 = time.perf_counter()
        p = predict_dataset(model, data, crops=False, detector=name)
        n = len(p.y_true)
        out[name] = {
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


def gate(fer: Path, per_class: int) -> dict:
    """Balanced accuracy of ferkit-gate on FER2013-as-photos with the old and the new detector + template."""
    from sklearn.metrics import balanced_accuracy_score

    from ferkit.faces.align import align_keypoints
    from ferkit.faces.detectors import create_detector
    from ferkit.models.loading import load_model

    model = load_model("ferkit-gate")
    photos, truth = [], []
    for cdir in sorted(fer.iterdir()):
        for p in sorted(cdir.iterdir())[:per_class]:
            gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            pad = gray.shape[0] // 4
            big = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            photos.append(cv2.resize(big, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC))
            truth.append("neutral" if cdir.name == "neutral" else "expressive")
    out = {}
    for label, name, template in (("before: blazeface", "blazeface", "fer_blazeface"), ("now: yunet", "yunet", "fer")):
        det = create_detector(name)
        crops, pred = {}, np.array(["__no_face__"] * len(photos), dtype=object)
        for i, photo in enumerate(photos):
            faces = det.detect_still(cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB))
            if faces:
                crops[i] = align_keypoints(photo, faces[0].keypoint_array(), model.input_size, template)
        probs = model.predict_proba(np.stack(list(crops.values())))
        pred[list(crops)] = [model.classes[j] for j in probs.argmax(1)]
        out[label] = {
            "n": len(photos),
            "misses": len(photos) - len(crops),
            "balanced_accuracy": round(float(balanced_accuracy_score(truth, pred)), 4),
        }
        print(label, out[label], flush=True)
        det.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sfew", "backend", "tracking-cpu", "gate"])
    ap.add_argument("--fer", default=str(SHARED / "data" / "fer2013" / "test"))
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--video", default=str(SHARED / "data" / "videos" / "woman_talking.mp4"))
    ap.add_argument("--data", default=str(SHARED / "data" / "sfew" / "train"))
    ap.add_argument("--detectors", default=DETECTORS)
    ap.add_argument("--models", default=str(SHARED / "models"))
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    if args.what == "sfew":
        res = sfew(Path(args.data), args.detectors.split(","))
        doc = {"command": "python benchmarks/detectors.py sfew", "results": res}
    elif args.what == "gate":
        res = gate(Path(args.fer), args.per_class)
        doc = {"command": f"python benchmarks/detectors.py gate --per-class {args.per_class}", "results": res}
    elif args.what == "tracking-cpu":
        res = tracking_cpu(Path(args.video), min(args.repeat, 3))
        doc = {"command": "python benchmarks/detectors.py tracking-cpu --repeat 3", "cpu_ms_per_frame": res}
    else:
        ms = backend(Path(args.models), args.repeat)
        doc = {"command": f"python benchmarks/detectors.py backend --repeat {args.repeat}", "ms_per_call": ms}
    doc["machine"] = f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores"
    out = HERE / "results" / f"detectors_{args.what}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
