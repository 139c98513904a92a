"""Which framing serves uncropped photos best? FER2013 test faces turned into small 'photos' (padded by a quarter
of their size with replicated edges, upscaled 4×, so the detector must find and align them) are scored with:

- ``crops``: the original crop (``--crops``; the upper bound, no detection),
- ``fer``: detector + alignment onto FER_TEMPLATE (the template derived from FER2013 crops; the default),
- ``fer_blazeface``: the same template derived from BlazeFace keypoints (the default before YuNet),
- ``tight``: detector + alignment onto an ArcFace-like tighter template,
- ``box``: detector box only, the box-based crop used when a detector gives no keypoints (Haar).

    python benchmarks/alignment_choice.py [--per-class 150] [--tta auto|none|flip|flip_shift] [--rotate DEG]
        [--detector yunet|blazeface|...]

``--tta`` as in ``ferkit analyze`` (default ``auto``: flip, these being stills). ``--rotate DEG`` also turns each
photo by a random angle in [-DEG, DEG] (seeded), as heads roll in real photos: the box framing cannot undo it,
keypoint alignment can.

Results: printed + benchmarks/results/alignment_choice.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from ferkit.faces.align import TEMPLATES, align_box, align_keypoints, resize_crop
from ferkit.faces.detectors import create_detector
from ferkit.models.base import TTA_CHOICES, set_tta
from ferkit.models.loading import load_model

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "fer2013" / "test"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--per-class", type=int, default=150, help="images per class (sorted order), 0 = all")
    ap.add_argument("--model", default="ferkit")
    ap.add_argument("--tta", default="auto", choices=TTA_CHOICES, help="test-time augmentation (auto = flip)")
    ap.add_argument("--rotate", type=float, default=0.0, help="random in-plane rotation of each photo, degrees")
    ap.add_argument("--detector", default="yunet", help="detector whose boxes and keypoints are used")
    ap.add_argument("--write-card", action="store_true", help="record the result in the model's card.json")
    args = ap.parse_args()
    model = load_model(args.model)
    set_tta([model], args.tta)
    det = create_detector(args.detector)
    size = model.input_size
    crops: dict[str, list[np.ndarray | None]] = {k: [] for k in ("crops", *TEMPLATES, "box")}
    truth = []
    rng = np.random.default_rng(0)
    for cdir in sorted(Path(args.data).iterdir()):
        files = sorted(cdir.iterdir())
        for p in files[: args.per_class or None]:
            gray = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            pad = gray.shape[0] // 4
            photo = cv2.resize(
                cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE),
                None,
                fx=4,
                fy=4,
                interpolation=cv2.INTER_CUBIC,
            )
            if args.rotate:
                h, w = photo.shape
                turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-args.rotate, args.rotate)), 1.0)
                photo = cv2.warpAffine(photo, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            faces = det.detect_still(cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB))
            truth.append(cdir.name)
            crops["crops"].append(resize_crop(gray, size))
            f = faces[0] if faces else None
            for t in TEMPLATES:
                crops[t].append(align_keypoints(photo, f.keypoint_array(), size, t) if f else None)
            crops["box"].append(align_box(photo, f.box, size) if f else None)
    results = {}
    for name, items in crops.items():
        idx = [i for i, c in enumerate(items) if c is not None]
        pred = np.array(["__no_face__"] * len(items), dtype=object)
        probs = model.predict_proba(np.stack([items[i] for i in idx]))
        pred[idx] = [model.classes[j] for j in probs.argmax(1)]
        results[name] = {
            "n": len(items),
            "misses": len(items) - len(idx),
            "accuracy": round(float(accuracy_score(truth, pred)), 4),
            "macro_f1": round(float(f1_score(truth, pred, labels=model.classes, average="macro")), 4),
        }
        print(
            f"{name:6s} accuracy {results[name]['accuracy']:.4f}  macro-F1 {results[name]['macro_f1']:.4f}  "
            f"misses {results[name]['misses']}/{len(items)}"
        )
    suffix = f"_rotate{args.rotate:g}" if args.rotate else ""
    suffix += "" if args.detector == "yunet" else f"_{args.detector}"
    command = (
        f"python benchmarks/alignment_choice.py --per-class {args.per_class} --tta {args.tta}"
        + (f" --rotate {args.rotate:g}" if args.rotate else "")
        + f" --detector {args.detector}"
    )
    subset = f"first {args.per_class} images per class" if args.per_class else "all images"
    doc = {
        "protocol": f"FER2013 test, {subset}, padded by 1/4 (edge replication) and upscaled 4x"
        + (f", turned by a random angle in [-{args.rotate:g}, {args.rotate:g}] degrees" if args.rotate else "")
        + f", then {args.detector} + alignment at the model's input size; calibrated, tta {model.tta}",
        "results": results,
        "chosen": "fer",
        "detector": args.detector,
        "best_by_macro_f1": max((*TEMPLATES, "box"), key=lambda k: results[k]["macro_f1"]),
        "command": command + " --write-card",
    }
    if args.write_card:
        card_path = model.folder / "card.json"
        card = json.loads(card_path.read_text())
        card["alignment_choice" + suffix] = doc
        card_path.write_text(json.dumps(card, indent=1) + "\n")
    out = HERE / "results" / f"alignment_choice{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": model.name, "per_class": args.per_class, **doc, "command": command}, indent=1))
    print(out)


if __name__ == "__main__":
    main()
