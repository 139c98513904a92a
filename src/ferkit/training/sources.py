"""Training sources as a flat list of :class:`Sample` with RAW labels, split assignment, and pixel loading.

Sources: a class-folder tree (optionally under split folders), FER2013's CSV, and a flat folder with a labels CSV.
Labels stay as the source names them; mapping onto a taxonomy happens elsewhere. Every ``*_source`` function takes an
optional ``report`` dict and appends human-readable problems to it (``"empty_class_folders"``, ``"bad_rows"``,
``"missing_files"``, ...); ``InputError`` is raised only when the whole source is unusable. Pixels are loaded through
the same paths as inference: :func:`ferkit.faces.align.resize_crop` for crops, detection plus
:func:`ferkit.faces.align.align_face` for photos (as :func:`ferkit.evaluation.scoring.predict_dataset` does).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from ferkit.errors import InputError
from ferkit.media.images import is_image_file
from ferkit.training.duplicates import DuplicateReport, drop_duplicates, find_duplicates, sample_digest
from ferkit.training.samples import Sample

__all__ = [
    "FER2013_LABELS",
    "DuplicateReport",
    "Sample",
    "assign_splits",
    "drop_duplicates",
    "fer2013_csv_source",
    "find_duplicates",
    "folder_source",
    "group_from_name",
    "labels_csv_source",
    "load_many",
    "load_pixels",
    "sample_digest",
    "split_name",
]

Report = dict[str, list[str]]

#: FER2013's emotion indices 0..6.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

_SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "publictest": "validation",
    "test": "test", "testing": "test", "privatetest": "test",
}  # fmt: skip


def split_name(name: str) -> str | None:
    """``train``/``validation``/``test`` for a split folder or CSV value (``Training``, ``val``, ``PublicTest``...)."""
    return _SPLIT_NAMES.get(name.strip().lower())


def _note(report: Report | None, kind: str, message: str) -> None:
    if report is not None:
        report.setdefault(kind, []).append(message)


def group_from_name(name: str, pattern: str) -> str | None:
    """The regex's ``group`` named group (else its first capture group) searched in ``name``; None if no match."""
    m = re.search(pattern, name)
    if m is None:
        return None
    if "group" in m.re.groupindex:
        return m.group("group")
    if m.re.groups < 1:
        raise InputError(f"group pattern {pattern!r} has no capture group")
    return m.group(1)


def folder_source(
    root: Path, name: str, group_pattern: str | None = None, report: Report | None = None
) -> list[Sample]:
    """Samples of ``root/<split>/<class>/*`` (split set) or ``root/<class>/*`` (split None), sorted.

    Split folders: train/training, val/valid/validation/PublicTest, test/testing/PrivateTest (any case). Reported:
    empty class folders, other folders next to split folders, files the group pattern does not match.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: source folder not found")
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    if any(split_name(d.name) for d in subdirs):
        class_dirs = []
        for d in subdirs:
            if split_name(d.name) is None:
                _note(report, "ignored_folders", f"{d}: not a split folder (train/validation/test), ignored")
                continue
            class_dirs += [(c, split_name(d.name)) for c in sorted(x for x in d.iterdir() if x.is_dir())]
    else:
        class_dirs = [(d, None) for d in subdirs]
    if not class_dirs:
        raise InputError(f"{root}: no class folders found (expected <class>/<image> or <split>/<class>/<image>)")
    samples = []
    for folder, split in class_dirs:
        files = sorted(p for p in folder.iterdir() if is_image_file(p))
        if not files:
            _note(report, "empty_class_folders", f"{folder}: class folder holds no images")
        for p in files:
            group = None
            if group_pattern is not None:
                group = group_from_name(p.name, group_pattern)
                if group is None:
                    _note(report, "ungrouped_files", f"{p}: group pattern {group_pattern!r} does not match")
            key = f"{name}:{p.relative_to(root).as_posix()}"
            samples.append(Sample(key, folder.name, name, path=p, group=group, split=split))
    if not samples:
        raise InputError(f"{root}: no images found in its class folders")
    return samples


def _open_csv(path: Path, required: Sequence[str]) -> tuple[csv.DictReader, TextIO]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: CSV file not found")
    fh = path.open(newline="", encoding="utf-8-sig")
    reader = csv.DictReader(fh)
    try:
        columns = reader.fieldnames or []
    except UnicodeDecodeError as exc:
        fh.close()
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start} of the header block)") from None
    for col in required:
        if col not in columns:
            fh.close()
            raise InputError(f"{path}: column {col!r} missing (columns: {', '.join(columns) or 'none'})")
    return reader, fh


def _rows(reader: csv.DictReader, path: Path) -> Iterator[dict[str, str]]:
    """The reader's rows; a byte that is not UTF-8 is one ``InputError`` naming the file and the line."""
    try:
        yield from reader
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (near line {reader.line_num + 1})") from None


def fer2013_csv_source(csv_path: Path, name: str, report: Report | None = None) -> list[Sample]:
    """FER2013's ``emotion,pixels[,Usage]`` CSV as 48×48 pixel samples keyed ``<name>:row <n>`` (header = row 1).

    Bad rows (pixel count other than 2304, non-integer or out-of-range values, unknown emotion or Usage) are skipped
    and reported under ``"bad_rows"``.
    """
    reader, fh = _open_csv(csv_path, ["emotion", "pixels"])
    samples = []
    with fh:
        for row in _rows(reader, csv_path):
            where = f"{csv_path}: row {reader.line_num}"
            try:
                emotion = int(row["emotion"])
                px = np.array((row["pixels"] or "").split(), dtype=np.int64)
            except (ValueError, TypeError, OverflowError):
                _note(report, "bad_rows", f"{where}: emotion or pixels not integers (or beyond 64 bits)")
                continue
            if not 0 <= emotion < len(FER2013_LABELS):
                _note(report, "bad_rows", f"{where}: emotion {emotion} outside 0..6")
                continue
            if px.size != 48 * 48 or px.min() < 0 or px.max() > 255:
                _note(report, "bad_rows", f"{where}: expected 2304 pixel values in 0..255, got {px.size}")
                continue
            usage = (row.get("Usage") or "").strip()
            split = split_name(usage) if usage else None
            if usage and split is None:
                _note(report, "bad_rows", f"{where}: unknown Usage {usage!r}")
                continue
            pixels = px.astype(np.uint8).reshape(48, 48)
            key = f"{name}:row {reader.line_num}"
            samples.append(Sample(key, FER2013_LABELS[emotion], name, pixels=pixels, split=split))
    if not samples:
        raise InputError(f"{csv_path}: no usable rows")
    return samples


def labels_csv_source(
    folder: Path,
    labels_csv: Path,
    name: str,
    file_column: str = "file",
    label_column: str = "label",
    group_column: str | None = None,
    split_column: str | None = None,
    report: Report | None = None,
) -> list[Sample]:
    """Images of ``folder`` (file paths relative to it) labelled by a CSV, in CSV order, keyed ``<name>:<file>``.

    Reported: rows naming missing files (``"missing_files"``), rows with an empty label, unknown split or a file
    listed twice (``"bad_rows"``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found")
    required = [file_column, label_column, *(c for c in (group_column, split_column) if c)]
    reader, fh = _open_csv(labels_csv, required)
    samples, seen = [], set()
    with fh:
        for row in _rows(reader, labels_csv):
            where = f"{labels_csv}: row {reader.line_num}"
            file, label = (row[file_column] or "").strip(), (row[label_column] or "").strip()
            if not file or not label:
                _note(report, "bad_rows", f"{where}: empty {file_column!r} or {label_column!r}")
                continue
            path = folder / file
            if not is_image_file(path):
                _note(report, "missing_files", f"{where}: {path} not found (or not an image)")
                continue
            split = None
            if split_column and (value := (row[split_column] or "").strip()):
                split = split_name(value)
                if split is None:
                    _note(report, "bad_rows", f"{where}: unknown split {value!r}")
                    continue
            key = f"{name}:{Path(file).as_posix()}"
            if key in seen:
                _note(report, "bad_rows", f"{where}: {file} listed again, row skipped")
                continue
            seen.add(key)
            group = ((row[group_column] or "").strip() or None) if group_column else None
            samples.append(Sample(key, label, name, path=path, group=group, split=split))
    if not samples:
        raise InputError(f"{labels_csv}: no rows name an existing image in {folder}")
    return samples


def _split_off(y: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted positions of a held-out part of about ``fraction``, stratified by ``y``; no group straddles it.

    Ungrouped positions (group None) are split with ``train_test_split``; grouped ones take k of n
    ``StratifiedGroupKFold`` folds, k/n closest to the fraction (n <= 20 and <= the number of groups).
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

    pos = np.arange(len(y))
    free, grouped = pos[groups == None], pos[groups != None]  # noqa: E711 - element-wise on an object array
    parts = []
    if len(free) > 1:
        try:
            parts.append(train_test_split(free, test_size=fraction, random_state=seed, stratify=y[free])[1])
        except ValueError:  # a class too small to stratify
            parts.append(train_test_split(free, test_size=fraction, random_state=seed)[1])
    if len(grouped) > 1:
        y, groups = y[grouped], groups[grouped]
        options = [(abs(k / n - fraction), n, k) for n in range(2, min(20, len(set(groups))) + 1)
                   for k in [min(n - 1, max(1, round(fraction * n)))]]  # fmt: skip
        if not options:  # a single group
            gss = GroupShuffleSplit(1, test_size=fraction, random_state=seed)
            parts.append(grouped[next(gss.split(grouped, y, groups))[1]])
        else:
            _, n, k = min(options)
            with warnings.catch_warnings():  # "the least populated class has only m members" is fine here
                warnings.simplefilter("ignore", UserWarning)
                folds = StratifiedGroupKFold(n_splits=n, shuffle=True, random_state=seed).split(grouped, y, groups)
                parts += [grouped[f] for _, f in itertools.islice(folds, k)]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def assign_splits(
    samples: list[Sample],
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.0,
    labels: Sequence[str] | None = None,
) -> list[Sample]:
    """Give samples without a split train/validation(/test), stratified by label; deterministic for a seed.

    Ungrouped samples: ``train_test_split`` stratified. Grouped ones: k of n ``StratifiedGroupKFold`` folds (n <= 20,
    k/n closest to the fraction), so no group lands in two splits and their fractions are approximate. Unsplit
    samples of a group that already has one split (from the source) join that split.
    ``labels`` (one per sample) replaces ``raw_label`` for stratification.
    """
    if labels is not None and len(labels) != len(samples):
        raise ValueError(f"{len(labels)} labels for {len(samples)} samples")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"split fractions must be in [0, 1) and sum below 1 (val {val_fraction}, test {test_fraction})"
        )
    y_all = np.array(list(labels) if labels is not None else [s.raw_label for s in samples], dtype=object)
    split = [s.split for s in samples]
    if any(s.group is not None for s in samples):
        fixed: dict[str, set[str]] = {}
        for s in samples:
            if s.split is not None and s.group is not None:
                fixed.setdefault(s.group, set()).add(s.split)
        for i, s in enumerate(samples):
            if s.split is None and s.group is not None and len(fixed.get(s.group, ())) == 1:
                split[i] = next(iter(fixed[s.group]))
    todo = np.array([i for i, sp in enumerate(split) if sp is None], dtype=np.int64)
    groups_all = np.array([s.group for s in samples], dtype=object)
    remaining = 1.0
    for name, fraction in (("test", test_fraction), ("validation", val_fraction)):
        if fraction <= 0 or len(todo) < 2:
            continue
        taken = _split_off(y_all[todo], groups_all[todo], min(fraction / remaining, 0.99), seed)
        for i in todo[taken]:
            split[i] = name
        todo = np.delete(todo, taken)
        remaining -= fraction
    return [
        s if s.split == (sp or "train") else dataclasses.replace(s, split=sp or "train")
        for s, sp in zip(samples, split, strict=True)
    ]


@functools.lru_cache(maxsize=1)
def _default_detector():
    from ferkit.faces.detectors import create_detector

    return create_detector()


def load_pixels(
    sample: Sample, size: int, channels: str, align: str = "crop", detector=None, template: str | None = None
) -> np.ndarray | None:
    """The model input for one sample: ``(size, size)`` gray or ``(size, size, 3)`` RGB uint8, or None.

    ``align="crop"``: the whole image resized (``ferkit analyze --crops``). ``align="detect"``: the best-scoring face
    of :meth:`~ferkit.faces.detectors.Detector.detect_still` aligned onto ``template`` (None: the detector's own), as
    ``predict_dataset`` does; None without a face.
    Unreadable or corrupt files give None.
    """
    from ferkit.faces.align import align_face, resize_crop, to_channels
    from ferkit.media.images import read_image

    if align not in ("crop", "detect"):
        raise InputError(f"unknown align {align!r} (expected 'crop' or 'detect')")
    if sample.pixels is not None:
        rgb = np.asarray(sample.pixels, np.uint8)  # gray stays gray for the crop path; detection gets RGB below
    elif sample.path is None:
        return None
    else:
        try:
            rgb = read_image(sample.path)
        except InputError:
            return None
    if align == "crop":
        return resize_crop(rgb, size, channels)
    rgb = to_channels(rgb, "rgb")
    detector = detector or _default_detector()
    faces = detector.detect_still(rgb)
    if not faces:
        return None
    return align_face(to_channels(rgb, channels), faces[0], size, template or detector.template)[0]


def load_many(
    samples: Sequence[Sample], size: int, channels: str, align: str = "crop", detector=None, template: str | None = None
) -> tuple[np.ndarray, list[int], list[str]]:
    """Stacked pixels of the readable samples, their indices into ``samples``, and the keys of the others."""
    if align == "detect" and detector is None:
        detector = _default_detector()
    images, kept, failed = [], [], []
    for i, s in enumerate(samples):
        img = load_pixels(s, size, channels, align, detector, template)
        if img is None:
            failed.append(s.key)
        else:
            images.append(img)
            kept.append(i)
    shape = (0, size, size) if channels == "gray" else (0, size, size, 3)
    return (np.stack(images) if images else np.zeros(shape, np.uint8)), kept, failed
