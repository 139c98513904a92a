"""A crowded 1920×1080 clip composed from real talking heads: detection recall/false positives, tracking, speed.

Ten talking-head clips from ``../shared/data/clips/`` are pasted (feathered ellipses) onto a real scene without
faces, at face widths from 40 to 220 px, moving on crossing straight paths, bigger (nearer) heads over smaller
ones, so faces cross and occlude each other. Ground truth is known by construction: each source frame's face box
(BlazeFace short range on the 256-px source, where faces are large) moved by the paste's scale and offset, with the
fraction of the box left visible. The clip is written to a cache folder at run time (never committed).

- detection: every frame through each detector; a face counts when ≥ 40 px wide, ≥ 60 % visible and ≥ 80 % inside
  the frame; matches by IoU ≥ 0.3 (Hungarian); a detection matching no face at all (counted or not) is a false
  positive. YuNet runs once at a low threshold and is scored at several (the shipped threshold is chosen here).
- no-face footage: YuNet's detections per frame on ``pyfeat_no_face.mp4`` (a real 960×540 scene without people) at
  the same thresholds: false positives where the composed clip's sky background offers few chances.
- tracking: ``FaceTracker`` with the default detector and interval; IDF1, ID switches, MOTA (motmetrics).
- speed: the whole ``Analyzer`` (default options) on the clip: frames/s and faces/s.

    python benchmarks/crowd.py [--clips ../shared/data/clips] [--cache DIR] [--seconds 6]

Results: printed + benchmarks/results/crowd.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ferkit.faces.detectors import Face, create_detector, iou
from ferkit.media.samples import write_video
from ferkit.media.video import iter_video

HERE = Path(__file__).resolve().parent
CLIPS = HERE.parent.parent / "shared" / "data" / "clips"
HEADS = (
    "styletalk_KristiNoem.mp4", "styletalk_Obama_clip1.mp4", "styletalk_andrew_clip_1.mp4",
    "styletalk_feifeili_clip1.mp4", "styletalk_reagan_clip1.mp4", "edtalk_expression_source.mp4",
    "edtalk_mouth_source.mp4", "edtalk_pose_source1.mp4", "styletalk_andrew_clip_2.mp4", "styletalk_Obama_clip2.mp4",
)  # fmt: skip
SIZES = (40, 44, 52, 60, 72, 90, 110, 140, 180, 220)  # face widths in output pixels, smallest (farthest) first
MIN_FACE, MIN_VISIBLE, MIN_INSIDE, MATCH_IOU = 40, 0.6, 0.8, 0.3


@dataclass
class Head:
    """One pasted talking head: its clip, face width and straight path (face centre, output pixels)."""

    clip: Path
    face_px: float
    start: tuple[float, float]
    end: tuple[float, float]


def plan(clips: Path, width: int = 1920, height: int = 1080, n: int = 10, seed: int = 0) -> list[Head]:
    """Heads on crossing paths: alternate ones walk half the frame's width left→right and right→left, in five
    horizontal bands (each shared by two heads going opposite ways), from staggered starts so crossings spread out."""
    rng = np.random.default_rng(seed)
    heads = []
    for i, (name, size) in enumerate(zip(HEADS[:n], SIZES[:n], strict=True)):
        y = height * (0.25 + 0.5 * (i % 5) / 4) + rng.uniform(-40, 40)
        x0 = width * rng.uniform(0.05, 0.45)
        x0, x1 = (x0, x0 + width / 2) if i % 2 == 0 else (width - x0, width / 2 - x0)
        heads.append(Head(clips / name, size, (x0, y), (x1, y + rng.uniform(-120, 120))))
    return heads


def _sources(heads: list[Head], frames: int) -> list[tuple[list[np.ndarray], list[tuple[float, ...]]]]:
    """Each head's source frames (looped to ``frames``) and its face box per frame (BlazeFace; last box when missed)."""
    det = create_detector("blazeface")
    out = []
    for h in heads:
        pix, boxes, box = [], [], None
        for f in iter_video(h.clip, None):
            faces = det.detect(f.rgb())
            box = faces[0].box if faces else box
            if box is not None:
                pix.append(f.rgb())
                boxes.append(box)
            if len(pix) >= frames:
                break
        out.append(([pix[i % len(pix)] for i in range(frames)], [boxes[i % len(boxes)] for i in range(frames)]))
    det.close()
    return out


def compose(heads: list[Head], out: Path, background: Path, seconds: float = 6.0, fps: int = 25) -> list[list[dict]]:
    """Write the clip to ``out``; returns per frame the ground truth: ``{"id", "box", "visible", "inside"}``."""
    n = int(seconds * fps)
    bg_frame = next(iter(iter_video(background, None)))
    bg = cv2.resize(bg_frame.rgb(), (1920, 1080), interpolation=cv2.INTER_CUBIC)
    sources = _sources(heads, n)
    truth: list[list[dict]] = []

    def frames():
        for t in range(n):
            img, owner = bg.copy(), np.full((1080, 1920), -1, np.int16)
            gt = []
            for k, (h, (pix, boxes)) in enumerate(zip(heads, sources, strict=True)):
                src, (bx, by, bw, bh) = pix[t], boxes[t]
                s = h.face_px / bw
                a = t / max(1, n - 1)
                cx, cy = (1 - a) * h.start[0] + a * h.end[0], (1 - a) * h.start[1] + a * h.end[1]
                tile = cv2.resize(src, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
                th, tw = tile.shape[:2]
                ox, oy = round(cx - (bx + bw / 2) * s), round(cy - (by + bh / 2) * s)
                mask = np.zeros((th, tw), np.float32)
                cv2.ellipse(mask, (tw // 2, th // 2), (int(tw * 0.47), int(th * 0.49)), 0, 0, 360, 1.0, -1)
                mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, tw / 40))[..., None]
                x0, y0, x1, y1 = max(0, ox), max(0, oy), min(1920, ox + tw), min(1080, oy + th)
                if x1 <= x0 or y1 <= y0:
                    continue
                part, m = tile[y0 - oy : y1 - oy, x0 - ox : x1 - ox], mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
                img[y0:y1, x0:x1] = (m * part + (1 - m) * img[y0:y1, x0:x1]).astype(np.uint8)
                owner[y0:y1, x0:x1][m[..., 0] > 0.5] = k
                gt.append({"id": k, "box": (ox + bx * s, oy + by * s, bw * s, bh * s)})
            for g in gt:  # visibility once every later (nearer) head is painted
                x, y, w, h = g["box"]
                xa, ya, xb, yb = max(0, int(x)), max(0, int(y)), min(1920, int(x + w)), min(1080, int(y + h))
                inside = max(0, xb - xa) * max(0, yb - ya) / (w * h)
                g["inside"] = round(inside, 3)
                g["visible"] = round(float((owner[ya:yb, xa:xb] == g["id"]).mean()) * inside if inside else 0.0, 3)
            truth.append(gt)
            yield img

    write_video(frames(), out, fps=fps, bit_rate=8_000_000)
    return truth


def counted(g: dict) -> bool:
    """Whether a ground-truth face counts for recall (big, visible and inside enough)."""
    return g["box"][2] >= MIN_FACE and g["visible"] >= MIN_VISIBLE and g["inside"] >= MIN_INSIDE


def match(boxes: list[tuple[float, ...]], gt: list[dict]) -> list[tuple[int, int]]:
    """Hungarian matching of detections to ground-truth faces at IoU ≥ ``MATCH_IOU``: (detection, truth) pairs."""
    if not boxes or not gt:
        return []
    cost = np.array([[1 - iou(b, g["box"]) for g in gt] for b in boxes])
    return [(r, c) for r, c in zip(*linear_sum_assignment(cost), strict=True) if 1 - cost[r, c] >= MATCH_IOU]


def score_detections(per_frame: list[list[Face]], truth: list[list[dict]], thresholds: list[float]) -> dict:
    """Recall of counted faces and false positives per frame at each score threshold."""
    out = {}
    for thr in thresholds:
        hit = total = fp = 0
        for faces, gt in zip(per_frame, truth, strict=True):
            boxes = [f.box for f in faces if f.score >= thr]
            pairs = match(boxes, gt)
            total += sum(counted(g) for g in gt)
            hit += sum(counted(gt[c]) for _, c in pairs)
            fp += len(boxes) - len(pairs)
        out[f"{thr:g}"] = {"recall": round(hit / total, 4), "fp_per_frame": round(fp / len(truth), 3)}
    return out


def detection(video: Path, truth: list[list[dict]]) -> dict:
    """Every frame through each detector (YuNet once at a low threshold, scored at several)."""
    runs = {
        "yunet": ("yunet", {"min_score": 0.3}, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
        "yunet_small": ("yunet_small", {"min_score": 0.3}, [0.5, 0.6, 0.7]),
        "blazeface": ("blazeface", {}, [0.5]),
        "blazeface_full": ("blazeface_full", {}, [0.5]),
    }
    out = {}
    for label, (name, kwargs, thresholds) in runs.items():
        det = create_detector(name, **kwargs)
        t0 = time.perf_counter()
        per_frame = [det.detect(f.rgb()) for f in iter_video(video, None)]
        ms = (time.perf_counter() - t0) / len(per_frame) * 1000
        det.close()
        scores = score_detections(per_frame, truth, thresholds)
        out[label] = {"ms_per_frame_with_decode": round(ms, 1), "by_threshold": scores}
        print(label, out[label], flush=True)
    return out


def no_face(video: Path, thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> dict:
    """Detections per frame of YuNet (every frame) on footage without faces, by score threshold."""
    det = create_detector("yunet", min_score=min(thresholds))
    scores = [[f.score for f in det.detect(fr.rgb())] for fr in iter_video(video, None)]
    out = {f"{t:g}": round(sum(s >= t for fs in scores for s in fs) / len(scores), 3) for t in thresholds}
    print("no-face footage, false positives per frame", out, flush=True)
    return {"video": video.name, "frames": len(scores), "fp_per_frame": out}


def tracking(video: Path, truth: list[list[dict]]) -> dict:
    """IDF1, ID switches and MOTA of the default tracker against the visible ground-truth faces."""
    import motmetrics as mm

    from ferkit.faces.tracking import FaceTracker

    acc = mm.MOTAccumulator(auto_id=True)
    tracker = FaceTracker(create_detector())
    for f, gt in zip(iter_video(video, None), truth, strict=True):
        tracks = tracker.update(f)
        gt = [g for g in gt if g["visible"] >= MIN_VISIBLE and g["inside"] >= MIN_INSIDE]
        dist = [[1 - iou(g["box"], t.face.box) for t in tracks] for g in gt]
        dist = np.array([[d if d <= 1 - MATCH_IOU else np.nan for d in row] for row in dist]).reshape(len(gt), -1)
        acc.update([g["id"] for g in gt], [t.face_id for t in tracks], dist)
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "num_switches", "mota", "num_unique_objects"])
    row = summary.iloc[0]
    out = {
        "idf1": round(float(row["idf1"]), 4),
        "id_switches": int(row["num_switches"]),
        "mota": round(float(row["mota"]), 4),
        "ids_given": tracker._next_id,
        "heads": int(row["num_unique_objects"]),
    }
    print("tracking", out, flush=True)
    return out


def speed(video: Path) -> dict:
    """The whole analysis with default options: frames/s and faces/s (after a warm-up pass)."""
    from ferkit.analysis.pipeline import AnalyzeOptions, Analyzer
    from ferkit.api import ANALYSIS_THREADS
    from ferkit.models.loading import load_model

    model = load_model("ferkit", ANALYSIS_THREADS)
    analyzer = Analyzer(model, AnalyzeOptions(fps=None))
    list(analyzer.iter_source(video))
    t0 = time.perf_counter()
    records = list(analyzer.iter_source(video))
    dt = time.perf_counter() - t0
    frames = len({r.frame_index for r in records})
    out = {"frames_per_s": round(frames / dt, 1), "faces_per_s": round(len(records) / dt, 1), "faces": len(records)}
    print("speed", out, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=str(CLIPS))
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "ferkit-crowd"))
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: detection,tracking,speed")
    args = ap.parse_args()
    clips, cache = Path(args.clips), Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    video = cache / "crowd.mp4"
    truth = compose(plan(clips), video, clips / "pyfeat_no_face.mp4", args.seconds)
    counted_faces = sum(counted(g) for gt in truth for g in gt)
    doc: dict = {
        "command": f"python benchmarks/crowd.py --seconds {args.seconds:g}",
        "clip": {"frames": len(truth), "heads": len(HEADS), "face_px": list(SIZES), "counted_faces": counted_faces},
    }
    print(doc["clip"], flush=True)
    skip = set(args.skip.split(","))
    if "detection" not in skip:
        doc["no_face_footage"] = no_face(clips / "pyfeat_no_face.mp4")
    for part, fn in (("detection", detection), ("tracking", tracking)):
        if part not in skip:
            doc[part] = fn(video, truth)
    if "speed" not in skip:
        doc["speed"] = speed(video)
    out = HERE / "results" / "crowd.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
