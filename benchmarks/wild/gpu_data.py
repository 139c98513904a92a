"""Data side of the in-the-wild GPU run: the packed arrays, grouped folds and input representations.

Runs on the GPU image (its own numpy/torch, no ferkit install): only numpy, cv2 and Pillow here.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

CLASSES7 = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NEUTRAL = CLASSES7.index("neutral")
N_FOLDS = 5


def _decode(blob: np.ndarray, off: np.ndarray) -> np.ndarray:
    from PIL import Image

    raw = blob.tobytes()
    return np.stack([np.asarray(Image.open(io.BytesIO(raw[a:b])).convert("L")) for a, b in itertools.pairwise(off)])


def data_root(pack: Path, smoke: bool = False) -> Path:
    """The scratch folder a pack is decoded into: one per pack, so runs on different packs never share arrays."""
    tag = hashlib.sha256(str(pack.resolve()).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"wild_{'smoke' if smoke else 'data'}_{tag}"


def decode_pack(pack: Path, out: Path, limit: int | None = None) -> None:
    """Decode the packed JPEGs once into plain ``.npy`` arrays that worker processes memory-map (``limit``: keep
    every n-th FER2013 image so that about ``limit`` remain, for smoke runs). A folder already decoded from the same
    pack files is kept; otherwise each array is replaced atomically, so a process still mapping the old one keeps it.
    """
    out.mkdir(parents=True, exist_ok=True)
    parts = (pack / "a" / "fer_train.npz", pack / "b" / "rest.npz")
    stamp = json.dumps([[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in parts] + [limit])
    if (out / "stamp.json").is_file() and (out / "stamp.json").read_text() == stamp:
        return
    (out / "stamp.json").unlink(missing_ok=True)

    def save(name: str, arr: np.ndarray) -> None:
        with open(out / f"{name}.npy.tmp", "wb") as fh:
            np.save(fh, arr)
        os.replace(out / f"{name}.npy.tmp", out / f"{name}.npy")

    a, b = np.load(parts[0]), np.load(parts[1])
    for name, z in (("fer", a), ("fert", b)):
        off, y = z[f"{name}_off"], z[f"{name}_y"].astype(np.int64)
        pick = np.arange(len(y)) if limit is None else np.arange(0, len(y), max(1, len(y) // limit))
        save(f"{name}_x48", _decode(z[f"{name}_jpeg"], off)[pick])
        save(f"{name}_y", y[pick])
    for k in b.files:
        if not k.startswith("fert_"):
            arr = b[k]
            save(k, arr.astype(np.int64) if k.endswith(("_y", "_group")) else arr)
    (out / "stamp.json").write_text(stamp)


def group_folds(groups: np.ndarray, k: int = N_FOLDS) -> np.ndarray:
    """Fold of every item: whole groups (films, subjects), biggest first onto the fold with the fewest items."""
    ids, counts = np.unique(groups, return_counts=True)
    load = np.zeros(k, np.int64)
    fold_of = {}
    for i in np.lexsort((ids, -counts)):
        f = int(np.argmin(load))
        fold_of[int(ids[i])] = f
        load[f] += counts[i]
    return np.array([fold_of[int(g)] for g in groups], np.int64)


class Data:
    """The packed sources, memory-mapped, and their representations at a size, channel count and upscaling."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[tuple, np.ndarray] = {}
        self.y = {s: self.load(f"{s}_y") for s in ("fer", "fert", "sfew", "ck")}
        self.fold = {"sfew": group_folds(self.load("sfew_group")), "ck": group_folds(self.load("ck_group"))}
        self.n = {s: len(v) for s, v in self.y.items()} | {"clip": len(self.load("clip_group"))}

    def load(self, name: str) -> np.ndarray:
        return np.load(self.root / f"{name}.npy", mmap_mode="r")

    def rep(self, src: str, size: int, ch: str, up: str = "cubic") -> np.ndarray:
        """``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB uint8 of one source.

        FER2013 (48 px) reaches 64 px by ``up`` (``cubic``, ``lanczos``; ``sr`` is applied on the GPU by the caller
        on top of ``cubic``); its test split always by cubic, as ``ferkit evaluate --crops`` does.
        """
        key = (src, size, ch, up if src == "fer" else "")
        if key in self._cache:
            return self._cache[key]
        if src in ("fer", "fert"):
            x = np.asarray(self.load(f"{src}_x48"))
            if size != 48:
                interp = cv2.INTER_LANCZOS4 if (src == "fer" and up == "lanczos") else cv2.INTER_CUBIC
                x = np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in x])
        elif src == "ck":
            x = np.asarray(self.load(f"ck_x{size}"))
        else:
            x = np.asarray(self.load(f"{src}_x{size}"))
        if ch == "gray" and x.ndim == 4:
            x = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in x])
        elif ch == "rgb" and x.ndim == 3:
            x = np.repeat(x[..., None], 3, axis=3)
        self._cache[key] = np.ascontiguousarray(x)
        return self._cache[key]

    def scored(self, src: str, fold: int) -> np.ndarray:
        """Indices a model of ``fold`` is scored on: all of FER2013 test, the held-out part of SFEW or CK+."""
        return np.arange(self.n[src]) if src == "fert" else self.split(src, fold)[1]

    def split(self, src: str, fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Train and held-out indices of SFEW or CK+ for ``fold`` (``-1``: everything trains, nothing held out)."""
        idx = np.arange(self.n[src])
        if fold < 0:
            return idx, idx[:0]
        f = self.fold[src]
        return idx[f != fold], idx[f == fold]
