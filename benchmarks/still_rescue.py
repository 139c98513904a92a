"""Passes for photos in which YuNet finds no face (``faces/still_rescue.py``): what each finds, what it boxes wrongly.

Three sets of photos in which ``YuNet.detect_still`` without the rescue finds nothing:

- **real**: the SFEW train images it misses (film frames cropped around one face; looked at by eye in docs);
- **degraded**: every other SFEW train image it finds, made hard four ways (darkened: gamma 2–3.5 × 0.3–0.6;
  defocused: Gaussian σ 3–6; zoomed in 1.6–2.4×; cut to a little over half), kept where it then misses the face;
  the face's box is the original detection moved by the degradation, so a box is checked to lie on the face;
- **face-free**: the 95 frames of ``pyfeat_no_face.mp4`` (sky, title letters), 400 SFEW-sized crops of them, and
  SFEW-sized crops of the other clips at 4 fps that stay clear of every face (any box YuNet or BlazeFace finds there
  at a low threshold, doubled about its centre): wood, doors, windows, suits, hands, microphones.

Each candidate pass runs on every photo of every set (YuNet at the still floor, 0.3); rules combine them offline, and
the shipped rule is checked end to end (``YuNet().detect_still``) against its offline count. For the real misses the
bundled model scores the face each rule finds (aligned, calibrated, flip), to give SFEW accuracy with that rule
(the images with a face are unchanged by any rule). Milliseconds: the shipped ``detect_still`` on the photos where
the rescue runs (all three sets), against the same call without the rescue.

    python benchmarks/still_rescue.py [--sfew ../shared/data/sfew/train] [--clips ../shared/data/clips]

Results: printed + benchmarks/results/still_rescue.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ferkit.faces.detectors import Face, create_detector, iou
from ferkit.faces.still_rescue import AGREE_IOU, brighten, equalise, framed, voters
from ferkit.faces.yunet import RESCUE_VOTERS, STILL_FLOOR, YuNet
from ferkit.media.images import read_image
from ferkit.media.video import iter_video

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SFEW_SIZE = (143, 181)
KINDS = ("dark", "blur", "zoom", "half")


def degrade(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The photo made hard to read one way, and the 2×3 map from its pixels to the new image's."""
    h, w = rgb.shape[:2]
    eye = np.eye(2, 3)
    if kind == "dark":
        g, k = rng.uniform(2.0, 3.5), rng.uniform(0.3, 0.6)
        return np.clip(255 * (rgb / 255.0) ** g * k, 0, 255).astype(np.uint8), eye
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), rng.uniform(3, 6)), eye
    if kind == "zoom":
        z = rng.uniform(1.6, 2.4)
        cx, cy = w / 2 + rng.uniform(-0.15, 0.15) * w, h / 2 + rng.uniform(-0.15, 0.15) * h
        m = np.array([[z, 0, w / 2 - z * cx], [0, z, h / 2 - z * cy]])
        return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT), m
    x0, y0 = [(w // 2 - w // 10, 0), (0, 0), (0, 0), (0, h // 2 - h // 10)][side := int(rng.integers(4))]
    x1, y1 = [(w, h), (w // 2 + w // 10, h), (w, h // 2 + h // 10), (w, h)][side]
    return np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.array([[1.0, 0, -x0], [0, 1.0, -y0]])


def build_sets(sfew: Path, clips: Path, base: YuNet) -> tuple[dict[str, list], dict[str, int], list]:
    """``{"real": [(name, rgb, label)], "degraded": [(name, rgb, box)], "face-free": [(name, rgb)]}`` of photos the
    still passes without the rescue miss, how many face-free photos they already box (wrongly), and the SFEW photos
    they find a face in as ``(name, rgb, label), face``."""
    rng = np.random.default_rng(2)
    files = sorted(p for p in sfew.glob("*/*") if p.is_file())
    sets: dict[str, list] = {"real": [], "degraded": [], "face-free": []}
    found = []
    for i, p in enumerate(files):
        rgb = read_image(p)
        faces = base.detect_still(rgb)
        if not faces:
            sets["real"].append((f"{p.parent.name}/{p.name}", rgb, p.parent.name))
            continue
        found.append(((p.name, rgb, p.parent.name), faces[0]))
        if i % 2:
            continue
        for kind in KINDS:
            img, m = degrade(rgb, kind, rng)
            if not base.detect_still(img):
                sets["degraded"].append((f"{kind}:{p.parent.name}/{p.name}", img, faces[0].transformed(m).box))
    boxed = {"no_face_frames": 0, "crops": 0}
    frames = [f.rgb() for f in iter_video(clips / "pyfeat_no_face.mp4", None)]
    candidates = [(f"pyfeat_no_face/{i}", f) for i, f in enumerate(frames)]
    for j in range(400):
        f = frames[rng.integers(len(frames))]
        s = rng.uniform(0.6, 2.0)
        cw, ch = int(SFEW_SIZE[0] * s), int(SFEW_SIZE[1] * s)
        x, y = rng.integers(0, f.shape[1] - cw), rng.integers(0, f.shape[0] - ch)
        candidates.append((f"pyfeat_no_face/crop{j}", cv2.resize(f[y : y + ch, x : x + cw], SFEW_SIZE)))
    candidates += _clear_crops(clips, base, rng)
    for name, img in candidates:
        if base.detect_still(img):
            boxed["crops" if "crop" in name or not name.startswith("pyfeat_no_face") else "no_face_frames"] += 1
        else:
            sets["face-free"].append((name, img))
    boxed["of"] = len(candidates)
    return sets, boxed, found


def _clear_crops(clips: Path, base: YuNet, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """SFEW-sized crops of the clips with faces (4 fps) that stay clear of every face, up to 6 per frame."""
    blaze = create_detector("blazeface")
    out = []
    videos = [p for p in sorted(clips.iterdir()) if "no_face" not in p.name and "noface" not in p.name]
    for video in [*videos, DATA / "videos" / "woman_talking.mp4"]:
        for fr in iter_video(video, 4.0):
            rgb = fr.rgb()
            h, w = rgb.shape[:2]
            strict, base.min_score = base.min_score, 0.3
            boxes = [f.box for f in base.detect_still(rgb) + blaze.detect_still(rgb)]
            base.min_score = strict
            got = 0
            for _ in range(300):
                ch = int(h * rng.uniform(0.12, 0.9))
                cw = int(ch * SFEW_SIZE[0] / SFEW_SIZE[1])
                if cw >= w or ch >= h:
                    continue
                x0, y0 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
                if all(
                    iou((x0, y0, cw, ch), (bx - bw / 2, by - bh / 2, 2 * bw, 2 * bh)) == 0 for bx, by, bw, bh in boxes
                ):
                    crop = cv2.resize(rgb[y0 : y0 + ch, x0 : x0 + cw], SFEW_SIZE, interpolation=cv2.INTER_AREA)
                    out.append((f"{video.stem}/{fr.index}_{got}", crop))
                    got += 1
                    if got == 6:
                        break
    blaze.close()
    return out


def run_passes(det: YuNet, rgb: np.ndarray) -> dict[str, list[Face]]:
    """Every candidate pass at the still floor (BlazeFace at its own 0.5)."""
    floor = STILL_FLOOR
    out = {"brightened": framed(det, brighten(rgb), floor, plain=True)}
    out.update({k: fn(rgb) for k, fn in voters(det, floor).items()})
    out["clahe8"] = framed(det, equalise(rgb, 8.0), floor, plain=True)
    return out


Rule = Callable[[dict[str, list[Face]]], Face | None]
SHIPPED = "shipped: brightened, then two of upscaled, clahe, mirrored, blazeface agree"
YUNET_VOTERS = ("upscaled", "clahe", "mirrored")


def single(name: str, floor: float = STILL_FLOOR) -> Rule:
    return lambda p: next((f for f in p[name] if f.score >= floor), None)


def agree(names: tuple[str, ...]) -> Rule:
    """The best face that another of ``names`` also found (IoU ≥ AGREE_IOU): ``still_rescue.rescue``'s step 2."""

    def rule(p: dict[str, list[Face]]) -> Face | None:
        found = sorted(((f, k) for k in names for f in p[k]), key=lambda fk: -fk[0].score)
        return next((f for f, k in found if any(k2 != k and iou(f.box, f2.box) >= AGREE_IOU for f2, k2 in found)), None)

    return rule


def first(*rules: Rule) -> Rule:
    return lambda p: next((f for r in rules if (f := r(p)) is not None), None)


RULES: dict[str, Rule] = {
    "brightened alone": single("brightened"),
    "upscaled alone": single("upscaled"),
    "clahe alone": single("clahe"),
    "clahe (clip 8) alone": single("clahe8"),
    "mirrored alone": single("mirrored"),
    "blazeface alone": single("blazeface"),
    "two of upscaled, clahe, mirrored agree": agree(YUNET_VOTERS),
    "two of upscaled, clahe, mirrored, blazeface agree": agree(RESCUE_VOTERS),
    "brightened, then two of upscaled, clahe, mirrored agree": first(single("brightened"), agree(YUNET_VOTERS)),
    SHIPPED: first(single("brightened"), agree(RESCUE_VOTERS)),
    "brightened, then two of upscaled, clahe, clahe8, mirrored, blazeface agree": first(
        single("brightened"), agree((*RESCUE_VOTERS, "clahe8"))
    ),
    "shipped, then upscaled alone": first(single("brightened"), agree(RESCUE_VOTERS), single("upscaled")),
    "shipped, then blazeface alone": first(single("brightened"), agree(RESCUE_VOTERS), single("blazeface")),
}


def on_face(f: Face, box: tuple[float, ...]) -> bool:
    cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
    return bool(box[0] <= cx <= box[0] + box[2] and box[1] <= cy <= box[1] + box[3])


def n_right(model, items: list) -> int:
    """How many ``((name, rgb, label), face)`` the model gets right, scored as ``predict_dataset`` scores photos."""
    from ferkit.faces.align import align_face, to_channels

    if not items:
        return 0
    ch = model.channels
    z = model.raw_logits(
        np.stack([align_face(to_channels(rgb, ch), f, model.input_size)[0] for (_, rgb, _), f in items])
    )
    z = model.calibration.apply(z) if model.calibration is not None else z
    return sum(model.classes[int(r.argmax())] == lab for ((_, _, lab), _), r in zip(items, z, strict=True))


def main() -> None:
    from ferkit.models.loading import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sfew", type=Path, default=DATA / "sfew" / "train")
    ap.add_argument("--clips", type=Path, default=DATA / "clips")
    args = ap.parse_args()
    base, det = YuNet(rescue=False), YuNet()
    t0 = time.perf_counter()
    sets, boxed, found = build_sets(args.sfew, args.clips, base)
    print({k: len(v) for k, v in sets.items()}, "face-free photos boxed without the rescue:", boxed, flush=True)
    passes = {k: [run_passes(base, item[1]) for item in v] for k, v in sets.items()}
    print(f"sets and passes: {time.perf_counter() - t0:.0f} s", flush=True)
    model = load_model("ferkit")
    base_right, n_sfew = n_right(model, found), len(found) + len(sets["real"])
    results = {}
    for name, rule in RULES.items():
        real = [(item, f) for item, p in zip(sets["real"], passes["real"], strict=True) if (f := rule(p))]
        correct = n_right(model, real)
        deg = {k: 0 for k in KINDS}
        deg_on_face = 0
        for (n, _, box), p in zip(sets["degraded"], passes["degraded"], strict=True):
            if f := rule(p):
                deg[n.split(":")[0]] += 1
                deg_on_face += int(on_face(f, box))
        ff = [n for (n, _), p in zip(sets["face-free"], passes["face-free"], strict=True) if rule(p)]
        results[name] = {
            "real_found": [item[0] for item, _ in real],
            "real_still_missed": len(sets["real"]) - len(real),
            "real_found_correct": int(correct),
            "sfew_accuracy": round((base_right + correct) / n_sfew, 4),
            "degraded_found": deg,
            "degraded_found_on_face": deg_on_face,
            "face_free_boxed": len(ff),
            "face_free_boxed_names": ff,
        }
        r = results[name]
        print(
            f"{name}: real {len(real)}/{len(sets['real'])} ({correct} right; SFEW {r['sfew_accuracy']}), degraded "
            f"{sum(deg.values())}/{len(sets['degraded'])} {deg} on the face {deg_on_face}, face-free boxed "
            f"{len(ff)}/{len(sets['face-free'])}",
            flush=True,
        )
    end_to_end, ms = {}, {}
    for k, items in sets.items():
        end_to_end[k] = sum(bool(det.detect_still(item[1])) for item in items)
        for label, d in (("with rescue", det), ("without", base)):
            t = time.perf_counter()
            for item in items:
                d.detect_still(item[1])
            ms.setdefault(label, {})[k] = round((time.perf_counter() - t) / max(1, len(items)) * 1000, 1)
    expect = {
        "real": len(sets["real"]) - results[SHIPPED]["real_still_missed"],
        "degraded": sum(results[SHIPPED]["degraded_found"].values()),
        "face-free": results[SHIPPED]["face_free_boxed"],
    }
    print("end to end (YuNet().detect_still):", end_to_end, "offline:", expect, "ms per photo:", ms, flush=True)
    doc = {
        "command": "python benchmarks/still_rescue.py",
        "sets": {k: len(v) for k, v in sets.items()},
        "face_free_boxed_without_rescue": boxed,
        "real_misses": [item[0] for item in sets["real"]],
        "sfew_accuracy_without_rescue": round(base_right / n_sfew, 4),
        "rules": results,
        "shipped": SHIPPED,
        "end_to_end_found": end_to_end,
        "ms_per_photo": ms,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    out = HERE / "results" / "still_rescue.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
