"""``ferkit extract-faces``: detect and align every face of the photos of a raw folder (the output of ``ferkit pull``,
or any folder of images) into crops, each with its photo's metadata and queries, and write what training needs.

Output folder:

* ``faces/<photo hash>_<n>.png``: aligned crops (the analysis detectors and alignment, as ``ferkit analyze`` does);
* ``faces.json``: every photo's outcome (crops with box, score, sharpness, label candidates; dropped faces and why),
  rewritten atomically every few photos, so a rerun continues after the last photo recorded;
* ``tags.csv`` (``file,tags``: the keywords of every query that found the photo) and ``rules.toml`` (each class's
  queries as keyword sets): the ``weak_tags`` training source reads them;
* ``credits.csv`` (source, id, photographer, page and licence URLs of each crop) and ``report.json`` (counts, faces
  per photo, drop reasons).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ferkit.errors import InputError
from ferkit.faces.align import align_face
from ferkit.faces.detectors import Face, check_detector, create_detector
from ferkit.media.files import OutputLock, atomic_write_bytes, atomic_write_text, check_out_dir, read_json_file
from ferkit.media.images import IMAGE_SUFFIXES, read_image
from ferkit.stock.manifest import MANIFEST, load_manifest
from ferkit.stock.training_files import write_outputs

FORMAT = "ferkit-stock-faces/1"
STATE = "faces.json"
MULTIPLE = ("largest", "all", "drop")
SAVE_EVERY = 20


@dataclass
class ExtractOptions:
    """Detection and the filters a face must pass (``multiple``: keep the largest face, all faces, or drop photos
    with more than one)."""

    detector: str = "yunet"
    size: int = 64  # crop side in pixels
    min_face: int = 40  # smallest detector box side in the photo, pixels
    min_score: float = 0.6
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey crop at 64 px; 0 keeps blurred faces
    multiple: str = "largest"

    def check(self) -> ExtractOptions:
        check_detector(self.detector)
        if self.multiple not in MULTIPLE:
            raise InputError(f"--multiple: {self.multiple!r} is not one of {', '.join(MULTIPLE)}")
        for name, value, lo, hi in [
            ("--size", self.size, 16, 1024),
            ("--min-face", self.min_face, 0, 100_000),
            ("--min-score", self.min_score, 0.0, 1.0),
            ("--min-sharpness", self.min_sharpness, 0.0, 1e6),
        ]:
            if not lo <= value <= hi:  # NaN fails too
                raise InputError(f"{name}: {value} is outside {lo}–{hi}")
        return self


@dataclass
class Photo:
    """One photo to process: its key (content hash), file, queries and attribution."""

    key: str
    path: Path
    queries: list[dict[str, str]]
    hits: list[dict[str, Any]]


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of a crop's grey pixels at 64×64 (low: blurred)."""
    gray = crop if crop.ndim == 2 else cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    gray = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def photos_of(raw: Path) -> tuple[list[Photo], dict[str, list[str]]]:
    """The photos of a pull folder (from its manifest) or of any folder of images (no queries), and the classes."""
    raw = Path(raw)
    if not raw.is_dir():
        raise InputError(f"{raw}: not a folder")
    if (raw / MANIFEST).is_file():
        man = load_manifest(raw, must_exist=True)
        photos = [Photo(sha, raw / rec["file"], rec["queries"], rec["hits"]) for sha, rec in man.images.items()]
        return photos, man.classes
    files = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{raw}: no images and no {MANIFEST} (the --out folder of `ferkit pull`)")
    photos = [Photo(hashlib.sha256(str(p.relative_to(raw)).encode()).hexdigest(), p, [], []) for p in files]
    return photos, {}


def _box_side(face: Face) -> float:
    return min(face.box[2], face.box[3])


class Extractor:
    """Faces of one photo at a time (see :func:`extract_faces`)."""

    def __init__(self, opts: ExtractOptions, out: Path) -> None:
        self.opts, self.out = opts.check(), out
        self.detector = create_detector(opts.detector)

    def close(self) -> None:
        self.detector.close()

    def photo(self, photo: Photo) -> dict[str, Any]:
        """The outcome of one photo: kept crops (written) and dropped faces with reasons."""
        rec: dict[str, Any] = {"file": str(photo.path), "detected": 0, "faces": [], "dropped": []}
        try:
            rgb = read_image(photo.path)
        except InputError as e:
            rec["dropped"].append({"reason": "unreadable", "detail": str(e).split(": ", 1)[-1]})
            return rec
        faces = self.detector.detect_still(rgb)  # as analyze finds faces in photos
        rec["detected"] = len(faces)
        if not faces:
            rec["dropped"].append({"reason": "no_face"})
            return rec
        good: list[tuple[Face, np.ndarray, str, float]] = []
        for f in faces:
            why, crop, how, sharp = None, None, "", 0.0
            if f.score < self.opts.min_score:
                why = "low_score"
            elif _box_side(f) < self.opts.min_face:
                why = "too_small"
            else:
                crop, how = align_face(rgb, f, self.opts.size, self.detector.template)
                sharp = sharpness(crop)
                if sharp < self.opts.min_sharpness:
                    why = "blurry"
            if why or crop is None:
                rec["dropped"].append({"reason": why, "box": _box(f), "score": round(f.score, 4)})
            else:
                good.append((f, crop, how, sharp))
        if len(good) > 1 and self.opts.multiple != "all":
            good.sort(key=lambda g: -g[0].box[2] * g[0].box[3])
            reason = "not_largest" if self.opts.multiple == "largest" else "several_faces"
            cut = 1 if self.opts.multiple == "largest" else 0
            for f, *_ in good[cut:]:
                rec["dropped"].append({"reason": reason, "box": _box(f), "score": round(f.score, 4)})
            good = good[:cut]
        for i, (f, crop, how, sharp) in enumerate(good):
            name = f"faces/{photo.key[:20]}_{i}.png"
            ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            if not ok:
                raise InputError(f"{photo.path}: could not encode the face crop")
            atomic_write_bytes(self.out / name, png.tobytes())
            rec["faces"].append(
                {"crop": name, "box": _box(f), "score": round(f.score, 4), "sharpness": round(sharp, 2), "aligned": how}
            )
        return rec


def _box(f: Face) -> list[float]:
    return [round(v, 1) for v in f.box]


def _load_state(out: Path, opts: ExtractOptions) -> dict[str, Any]:
    path = out / STATE
    if not path.is_file():
        return {"format": FORMAT, "options": asdict(opts), "photos": {}}
    state = read_json_file(path, "extract-faces state", 512 << 20)
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("photos"), dict):
        raise InputError(f"{path}: not a ferkit extract-faces record ({FORMAT!r} expected)")
    if state.get("options") != asdict(opts):
        raise InputError(f"{path}: made with other options {state.get('options')}; use another --out or the same ones")
    return state


def _remove_orphans(out: Path, state: dict[str, Any]) -> None:
    """Crops written after the last saved record (an interrupted run) and leftover temporary files."""
    listed = {Path(f["crop"]).name for rec in state["photos"].values() for f in rec["faces"]}
    folder = out / "faces"
    for f in folder.iterdir() if folder.is_dir() else []:
        if f.is_file() and f.name not in listed and (f.suffix == ".png" or f.name.endswith(".tmp")):
            f.unlink()


def extract_faces(
    raw: Path,
    out: Path,
    opts: ExtractOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Extract the faces of ``raw`` into ``out`` (resumable; see the module doc); returns the report."""
    opts = (opts or ExtractOptions()).check()
    photos, classes = photos_of(raw)
    out = check_out_dir(out, "extract-faces output folder", inputs=[raw])
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out / STATE):
        state = _load_state(out, opts)
        _remove_orphans(out, state)
        todo = [p for p in photos if p.key not in state["photos"]]
        ex = Extractor(opts, out)
        try:
            for n, photo in enumerate(todo, 1):
                rec = ex.photo(photo)
                rec.update(queries=photo.queries, hits=photo.hits)
                state["photos"][photo.key] = rec
                if n % SAVE_EVERY == 0:
                    atomic_write_text(out / STATE, json.dumps(state, ensure_ascii=False) + "\n")
                if on_progress:
                    on_progress(len(photos) - len(todo) + n, len(photos))
        finally:
            ex.close()
            atomic_write_text(out / STATE, json.dumps(state, ensure_ascii=False) + "\n")
        return write_outputs(out, state, classes, [p.key for p in photos])
