"""Landmarker features of FER2013 train/test and CK+ through ``ferkit-au``'s own crop path, cached for
``benchmarks/au_emotion.py`` (training and still-image figures).

    python benchmarks/au_features_cache.py [--cache /work/scratch/au/emotion] [--data ../shared/data] [--splits ...]

Each image is read as ``ferkit evaluate --crops`` reads it (``read_image`` → ``resize_crop`` to the model's 128-px RGB
input) and fitted by :func:`ferkit.models.au_emotion.fit_features` in this process (one landmarker, ~11 ms a crop).
Per split ``<cache>/<split>.npz``: ``files`` (``<class>/<name>``; CK+: the image name), ``x`` (N, F) float64, ``how``
(0 no fit, 1 fitted, 2 fitted on the retry). Work is checkpointed every 2,000 images, so a killed run resumes.
FER2013 train + test + CK+ (36,346 images) take ~7–8 min on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ferkit.faces.align import resize_crop
from ferkit.faces.aus import LandmarkerPool
from ferkit.labels.folders import list_folder_dataset
from ferkit.media.images import read_image
from ferkit.models.au_emotion import fit_features

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
CACHE = Path("/work/scratch/au/emotion")
INPUT_SIZE = 128  # ferkit-au's crop (card input_size)
SPLITS = ("fer_train", "fer_test", "ckplus")
CHUNK = 2000


def split_files(data: Path, split: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of a split, in a fixed order."""
    if split == "ckplus":
        return [(p.name, p) for p in sorted((data / "ckplus_au" / "images").glob("*.png"))]
    root = data / "fer2013" / split.removeprefix("fer_")
    return [(f"{i.folder}/{i.path.name}", i.path) for i in list_folder_dataset(root)]


def load(cache: Path, split: str) -> dict[str, np.ndarray]:
    """The cached arrays of one split (``files``, ``x``, ``how``)."""
    with np.load(cache / f"{split}.npz") as z:
        return {k: z[k] for k in z.files}


def extract(data: Path, cache: Path, split: str) -> None:
    """Fit every image of ``split`` (resuming from finished chunks) and write ``<cache>/<split>.npz``."""
    out = cache / f"{split}.npz"
    if out.is_file():
        print(f"{split}: cached at {out}", flush=True)
        return
    files = split_files(data, split)
    pool, parts = LandmarkerPool(0), []
    t0 = time.time()
    for k in range(0, len(files), CHUNK):
        part = cache / split / f"chunk_{k // CHUNK:03d}.npz"
        names = np.array([n for n, _ in files[k : k + CHUNK]])
        if part.is_file():
            with np.load(part) as z:
                if list(z["files"]) == list(names):
                    parts.append({key: z[key] for key in z.files})
                    continue
        crops = [resize_crop(read_image(p), INPUT_SIZE, "rgb") for _, p in files[k : k + CHUNK]]
        x, how = fit_features(pool, crops)
        part.parent.mkdir(parents=True, exist_ok=True)
        np.savez(part, files=names, x=x, how=how)
        parts.append({"files": names, "x": x, "how": how})
        done = k + len(names)
        print(f"{split}: {done}/{len(files)} ({time.time() - t0:.0f} s, fit {np.mean(how > 0):.3f})", flush=True)
    merged = {key: np.concatenate([p[key] for p in parts]) for key in ("files", "x", "how")}
    np.savez(out, **merged)
    print(f"{split}: {len(files)} images, fitted {np.mean(merged['how'] > 0):.4f} -> {out}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    a = ap.parse_args()
    for split in a.splits:
        extract(a.data, a.cache, split)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
