"""Derive ferkit's alignment template: where BlazeFace finds eyes, nose and mouth inside FER2013 training crops.

Each crop is padded by a quarter of its size (edge replication) so the detector sees the whole face, the keypoints
are mapped back to crop coordinates and divided by the crop size, and the per-point median is printed. Aligning a
photo onto this template frames the face the way the FER2013 crops the model was trained on are framed.

    python scripts/derive_template.py ../shared/data/fer2013/train --limit 3000
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from ferkit.faces.detectors import KEYPOINT_NAMES, create_detector
from ferkit.labels.folders import list_folder_dataset


def main(root: str, limit: int = 3000) -> None:
    items = list_folder_dataset(Path(root))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(items), size=min(limit, len(items)), replace=False)
    det = create_detector("blazeface")
    pts, boxes, missed = [], [], 0
    for i in pick:
        gray = cv2.imread(str(items[i].path), cv2.IMREAD_GRAYSCALE)
        s = gray.shape[0]
        p = s // 4
        rgb = cv2.cvtColor(cv2.copyMakeBorder(gray, p, p, p, p, cv2.BORDER_REPLICATE), cv2.COLOR_GRAY2RGB)
        faces = det.detect(rgb)
        if not faces:
            missed += 1
            continue
        pts.append((faces[0].keypoint_array() - p) / s)
        x, y, w, h = faces[0].box
        boxes.append(((x - p + w / 2) / s, (y - p + h / 2) / s, max(w, h) / s))
    arr = np.array(pts)
    med = np.median(arr, axis=0)
    print(f"images {len(pick)}, no face {missed}")
    for name, (x, y), (sx, sy) in zip(KEYPOINT_NAMES, med, arr.std(0), strict=True):
        print(f"{name:10s} x={x:.4f} y={y:.4f}  (std {sx:.3f}, {sy:.3f})")
    cx, cy, side = np.median(np.array(boxes), axis=0)
    print(f"box centre x={cx:.4f} y={cy:.4f}, box side / crop side = {side:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else 3000)
