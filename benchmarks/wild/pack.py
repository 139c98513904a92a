"""Pack the in-the-wild training data into one compressed file for a GPU machine (which cannot see ../shared).

FER2013 train (byte duplicates of test images and repeats inside train dropped) and test at 48×48 gray as stored;
SFEW train detected and aligned like ``ferkit evaluate`` without ``--crops`` (``--detector``, default YuNet as
shipped, with its still-photo pass and its template; the GPU run of docs/training.md used BlazeFace) at 48 and 64 px
RGB, grouped by film; CK+ crops (48 px gray; 64 px by cubic upscaling, as ``--crops`` does) grouped by subject;
unlabelled faces of ``clips/`` sampled at ``--fps`` and aligned the same way, for pseudo-labels.
``video_labelled/`` is evaluation only and is not packed.

    python benchmarks/wild/pack.py --out .gpu
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from ferkit.faces.align import align_face, resize_crop, to_channels
from ferkit.faces.detectors import create_detector, detect_tiled
from ferkit.labels.folders import file_digest
from ferkit.media.images import read_image
from ferkit.media.video import iter_video

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FILM = re.compile(r"^(.+?)[_-]\d+_+\d+\.\w+$")


def fer_files(root: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(path, class) of FER2013 train in pack order — class by class, sorted, without byte copies of test images and
    without repeats (the first kept) — and of FER2013 test."""
    test = [(p, c) for c in CLASSES for p in sorted((root / "test" / c).iterdir())]
    test_md5 = {file_digest(p) for p, _ in test}
    seen: set[str] = set()
    kept = []
    for c in CLASSES:
        for p in sorted((root / "train" / c).iterdir()):
            h = file_digest(p)
            if h not in test_md5 and h not in seen:
                seen.add(h)
                kept.append((p, c))
    return kept, test


def fer(root: Path) -> dict[str, np.ndarray]:
    kept, test = fer_files(root)
    print(f"fer2013 train -> {len(kept)} after dropping copies of test and repeats; test {len(test)}")

    def arr(items):  # the files' own JPEG bytes: a third of the raw pixels' size (the GPU copy is size-limited)
        data = [p.read_bytes() for p, _ in items]
        return (
            np.frombuffer(b"".join(data), np.uint8),
            np.cumsum([0] + [len(b) for b in data]).astype(np.int64),
            np.array([CLASSES.index(c) for _, c in items], np.int8),
        )

    x, xo, y = arr(kept)
    tx, txo, ty = arr(test)
    return {"fer_jpeg": x, "fer_off": xo, "fer_y": y, "fert_jpeg": tx, "fert_off": txo, "fert_y": ty}


def _aligned(det, rgb: np.ndarray, still: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    faces = det.detect_still(rgb) if still else detect_tiled(det, rgb)
    if not faces:
        return None
    return align_face(rgb, faces[0], 64, det.template)[0], align_face(rgb, faces[0], 48, det.template)[0]


def sfew(root: Path, det) -> dict[str, np.ndarray]:
    x64, x48, y, film, names, missed = [], [], [], [], [], 0
    for c in CLASSES:
        for p in sorted((root / c).iterdir()):
            got = _aligned(det, to_channels(read_image(p), "rgb"), still=True)
            if got is None:
                missed += 1
                continue
            x64.append(got[0])
            x48.append(got[1])
            y.append(CLASSES.index(c))
            film.append(FILM.match(p.name).group(1))
            names.append(p.name)
    films = sorted(set(film))
    print(f"sfew {len(y)} faces from {len(films)} films; {missed} images without a detected face")
    return {
        "sfew_x64": np.stack(x64),
        "sfew_x48": np.stack(x48),
        "sfew_y": np.array(y, np.int8),
        "sfew_group": np.array([films.index(f) for f in film], np.int16),
        "sfew_films": np.array(films),
        "sfew_names": np.array(names),
    }


def ckplus(root: Path) -> dict[str, np.ndarray]:
    import csv

    rows = list(csv.DictReader((root / "labels.csv").open()))
    x48, y, subj = [], [], []
    subjects = sorted({r["subject"] for r in rows})
    for r in rows:
        if r["emotion"] not in CLASSES:  # contempt: not in basic7
            continue
        for p in sorted((root / "images").glob(f"{r['seq']}_*.png")):
            x48.append(resize_crop(read_image(p), 48, "gray"))
            y.append(CLASSES.index(r["emotion"]))
            subj.append(subjects.index(r["subject"]))
    x48 = np.stack(x48)
    print(f"ck+ {len(y)} images of {len(set(subj))} subjects (contempt left out)")
    return {
        "ck_x48": x48,
        "ck_x64": np.stack([resize_crop(im, 64, "gray") for im in x48]),
        "ck_y": np.array(y, np.int8),
        "ck_group": np.array(subj, np.int16),
    }


def clips(root: Path, det, fps: float) -> dict[str, np.ndarray]:
    x64, x48, clip = [], [], []
    paths = sorted(p for p in root.iterdir() if p.suffix.lower() in (".mp4", ".mov"))
    for i, p in enumerate(paths):
        n = 0
        for frame in iter_video(p, fps=fps):
            got = _aligned(det, frame.rgb())
            if got is not None:
                x64.append(got[0])
                x48.append(got[1])
                clip.append(i)
                n += 1
        print(f"  {p.name}: {n} faces")
    print(f"clips: {len(clip)} unlabelled faces from {len(paths)} clips")
    return {
        "clip_x64": np.stack(x64),
        "clip_x48": np.stack(x48),
        "clip_group": np.array(clip, np.int16),
        "clip_names": np.array([p.name for p in paths]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    ap.add_argument("--out", type=Path, default=Path(".gpu"), help="writes a/fer_train.npz and b/rest.npz")
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--detector", default="yunet", help="face detector for SFEW and clip faces (default: yunet)")
    a = ap.parse_args()
    det = create_detector(a.detector)
    pack: dict[str, np.ndarray] = {}
    pack |= ckplus(a.shared / "ckplus_au")
    pack |= sfew(a.shared / "sfew" / "train", det)
    pack |= clips(a.shared / "clips", det, a.fps)
    pack |= fer(a.shared / "fer2013")
    # two parts, each under the 64 MiB a GPU call may carry with the repository: the train JPEGs, and the rest
    train = {k: pack.pop(k) for k in ("fer_jpeg", "fer_off", "fer_y")}
    for part, arrays in (("a/fer_train.npz", train), ("b/rest.npz", pack)):
        out = a.out / part
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **arrays)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
