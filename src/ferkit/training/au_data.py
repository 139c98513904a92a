"""Landmark fits for AU-head training: CK+ crops and FER2013 neutral faces through the package's own
:class:`~ferkit.faces.landmarker.FaceLandmarker`, each image and its mirror, cached as ``.npz`` in a work folder.

Crops are prepared exactly as ``ferkit.faces.aus.still_crop`` does (``prepare_crop(img, STILL_PAD, STILL_SIZE)``,
replicated border), so the features the heads are trained on are the ones ``--crops`` analysis computes.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ferkit.faces.au_features import features_from_arrays
from ferkit.faces.aus import STILL_PAD, STILL_SIZE
from ferkit.faces.landmarker import FaceLandmarker, prepare_crop

#: Default data root (``../shared/data`` from the project root, as in the tests); ``FERKIT_DATA`` overrides it.
DEFAULT_DATA = Path(os.environ.get("FERKIT_DATA", "../shared/data"))
AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU16", "AU17", "AU20",
       "AU23", "AU24", "AU25", "AU26", "AU27")  # fmt: skip
#: The AUs whose mean F1 is the headline figure, and its target.
TARGET_AUS = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU12", "AU15", "AU17", "AU25", "AU27")
TARGET_MEAN_F1 = 0.65
#: AUs with a one-sided (subject's left, mirrored for the right) head besides the bilateral one.
LATERAL_AUS = ("AU2", "AU12", "AU14")
INTENSITY = "uncalibrated: logit rescaled from the threshold (0) to the 90th pct of training positives (1)"
BOOTSTRAPS = 2000
#: Crop preparation tag (border r = replicate, pad, size), as in the prototype's cache names.
CROP_TAG = f"r{STILL_PAD}s{STILL_SIZE}"
_KEYS = ("lm", "bs", "mat", "ok")


def fer_neutral_files(data: Path, n: int = 600, seed: int = 0) -> list[Path]:
    """The FER2013 ``train/neutral`` sample: ``random.Random(seed).sample`` of ``n`` of the name-sorted files, then
    sorted (the prototype's ``extract.py --set fer_neutral --n 600``; not the first 600 by name)."""
    files = sorted(str(p) for p in (data / "fer2013" / "train" / "neutral").glob("*.jpg"))
    return [Path(f) for f in sorted(random.Random(seed).sample(files, n))]  # noqa: S311 (reproducible subset)


def ckplus_files(data: Path) -> list[Path]:
    """All CK+ crops, sorted by name (3 per sequence)."""
    return sorted((data / "ckplus_au" / "images").glob("*.png"))


def extract(files: Sequence[Path], cache: Path, desc: str = "fits") -> dict[str, np.ndarray]:
    """Fit every image and its horizontal mirror; arrays ``lm, bs, mat, ok`` (+ ``_m`` for the mirror), ``files``,
    ``size``. Cached in ``cache`` (reused only when its file list matches)."""
    names = np.array([f.name for f in files])
    if cache.is_file():
        with np.load(cache) as z:
            if list(z["files"]) == list(names):
                return {k: z[k] for k in z.files}
    out: dict[str, list[np.ndarray]] = {k + s: [] for s in ("", "_m") for k in _KEYS}
    with FaceLandmarker() as lm:
        for f in tqdm(files, desc=desc, unit="img", file=sys.stderr, mininterval=2.0):
            gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if gray is None:
                raise FileNotFoundError(f"{f}: cannot read the image")
            for suffix, im in (("", gray), ("_m", gray[:, ::-1])):
                r = lm.fit(prepare_crop(np.ascontiguousarray(im), STILL_PAD, STILL_SIZE)[0])
                out["ok" + suffix].append(np.bool_(r is not None))
                out["lm" + suffix].append(r.landmarks if r else np.zeros((478, 3), np.float32))
                out["bs" + suffix].append(r.blendshapes if r else np.zeros(52, np.float32))
                out["mat" + suffix].append(r.matrix if r else np.eye(4, dtype=np.float32))
    arrs: dict[str, np.ndarray] = {k: np.stack(v) for k, v in out.items()}
    arrs |= {"files": names, "size": np.array(STILL_SIZE)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **arrs)  # type: ignore[arg-type]
    return arrs


def to_features(a: dict[str, np.ndarray], mirrored: bool = False) -> np.ndarray:
    """Feature rows (float64) of the fitted images (``ok``) in an :func:`extract` result, in file order."""
    s = "_m" if mirrored else ""
    ok = a["ok" + s]
    size = (int(a["size"]), int(a["size"]))
    return features_from_arrays(a["lm" + s][ok], a["bs" + s][ok], a["mat" + s][ok], size).astype(np.float64)


@dataclass
class AuData:
    """CK+ rows (3 per sequence, labelled with the sequence's peak FACS codes) and the FER2013 neutral faces."""

    x: np.ndarray  # (459, F) features
    x_mirror: np.ndarray  # (459, F) features of the mirrored images
    y: np.ndarray  # (459, len(AUS)) 0/1
    subject: np.ndarray
    seq: np.ndarray
    emotion: np.ndarray
    is_peak: np.ndarray
    fer: np.ndarray  # (n_fit, F) FER neutral faces the landmarker fitted, in file order
    ck_fits: int
    fer_files: list[str]
    fer_fits: int


def load_data(data: Path = DEFAULT_DATA, cache_dir: Path = Path("runs/au_cache"), n_fer: int = 600) -> AuData:
    """Extract (or read from ``cache_dir``) the fits and build the training rows; every CK+ crop must fit."""
    with open(data / "ckplus_au" / "labels.csv", newline="") as fh:
        rows = {r["seq"]: r for r in csv.DictReader(fh)}
    ck = extract(ckplus_files(data), cache_dir / f"ckplus_{CROP_TAG}.npz", "CK+ fits")
    ok = ck["ok"] & ck["ok_m"]
    if not ok.all():
        raise RuntimeError(f"{int((~ok).sum())} CK+ images (or mirrors) without a landmarker fit")
    files = [str(f) for f in ck["files"]]
    seqs = np.array(["_".join(f.split("_")[:2]) for f in files])
    fer_paths = fer_neutral_files(data, n_fer)
    fer = extract(fer_paths, cache_dir / f"fer_neutral_{CROP_TAG}.npz", "FER neutral fits")
    return AuData(
        x=to_features(ck),
        x_mirror=to_features(ck, mirrored=True),
        y=np.array([[int(rows[s][a]) for a in AUS] for s in seqs], np.int64),
        subject=np.array([rows[s]["subject"] for s in seqs]),
        seq=seqs,
        emotion=np.array([rows[s]["emotion"] for s in seqs]),
        is_peak=np.array([rows[s]["peak_image"] == f for s, f in zip(seqs, files, strict=True)]),
        fer=to_features(fer),
        ck_fits=int(ck["ok"].sum()),
        fer_files=[p.name for p in fer_paths],
        fer_fits=int(fer["ok"].sum()),
    )


def files_digest(names: Sequence[str]) -> str:
    """SHA-256 of the newline-joined file names (to name a file list in a card)."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
