"""Derive ferkit's alignment template: where a detector finds eyes, nose and mouth inside FER2013 training crops.

Each crop is padded by a quarter of its size (edge replication) so the detector sees the whole face and upscaled 4×
(YuNet misses a fifth of the 72-px padded crops at their own size), the keypoints are mapped back to crop
coordinates and divided by the crop size, and the per-point median is printed. Aligning a
photo onto this template frames the face the way the FER2013 crops the model was trained on are framed. Run it with
the detector whose keypoints feed the alignment (``yunet`` since issue 16; the first template came from
``blazeface``).

    python scripts/derive_template.py ../shared/data/fer2013/train --limit 3000 --detector yunet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ferkit.faces.detectors import KEYPOINT_NAMES, create_detector
from ferkit.labels.folders import list_folder_dataset


def main(root: str, limit: int = 3000, detector: str = "yunet") -> None:
    items = list_folder_dataset(Path(root))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(items), size=min(limit, len(items)), replace=False)
    det = create_detector(detector)
    pts, boxes, missed = [], [], 0
    for i in pick:
        gray = cv2.imread(str(items[i].path), cv2.IMREAD_GRAYSCALE)
        s = gray.shape[0]
        p = s // 4
        big = cv2.resize(cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE), None, fx=4, fy=4)
        faces = det.detect(cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        if not faces:
            missed += 1
            continue
        pts.append((faces[0].keypoint_array() / 4 - p) / s)
        x, y, w, h = np.array(faces[0].box) / 4
        boxes.append(((x - p + w / 2) / s, (y - p + h / 2) / s, max(w, h) / s))
    arr = np.array(pts)
    med = np.median(arr, axis=0)
    print(f"{detector}: images {len(pick)}, no face {missed}")
    for name, (x, y), (sx, sy) in zip(KEYPOINT_NAMES, med, arr.std(0), strict=True):
        print(f"{name:10s} x={x:.4f} y={y:.4f}  (std {sx:.3f}, {sy:.3f})")
    cx, cy, side = np.median(np.array(boxes), axis=0)
    print(f"box centre x={cx:.4f} y={cy:.4f}, box side / crop side = {side:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--limit", type=int, default=3000)
    ap.add_argument("--detector", default="yunet")
    a = ap.parse_args()
    main(a.root, a.limit, a.detector)
