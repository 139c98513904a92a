"""Validation of channel files and ferkit records used as channels, and of fuse's options: every field typed and in
range, so a hostile row is one :class:`~ferkit.errors.InputError` line naming file, row and field, never NaN scores,
a traceback or a window table without bound."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ferkit.errors import InputError

#: Most windows ``fuse`` builds (a stray far-away timestamp or a tiny window would otherwise make billions).
MAX_WINDOWS = 100_000
#: Smallest --window (s): below a millisecond no channel has samples to fuse.
MIN_WINDOW = 1e-3
#: Probabilities may exceed 1 by this much (rounding in the writer).
PROB_SLACK = 1e-3


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v: object, where: str, field: str) -> float:
    if not _is_number(v):
        raise InputError(f"{where} has a non-numeric '{field}': {v!r}"[:300])
    try:
        x = float(v)  # type: ignore[arg-type]
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise InputError(f"{where} has a non-finite '{field}': {v!r}"[:300])
    return x


def check_probabilities(probs: object, where: str, field: str = "probabilities") -> dict[str, float]:
    """A class → probability mapping: string keys, finite values in [0, 1], not all zero."""
    if not isinstance(probs, dict) or not probs:
        raise InputError(f"{where}: '{field}' must be an object of class probabilities, got {probs!r}"[:300])
    out = {}
    for k, v in probs.items():
        if not isinstance(k, str):
            raise InputError(f"{where}: '{field}' has a class name that is not a string: {k!r}"[:300])
        p = finite(v, where, f"{field}.{k}")
        if not 0 <= p <= 1 + PROB_SLACK:
            raise InputError(f"{where}: '{field}.{k}' = {v!r} is not a probability in [0, 1]"[:300])
        out[k] = p
    if sum(out.values()) <= 0:
        raise InputError(f"{where}: '{field}' are all zero")
    return out


def check_channel_row(row: dict[str, Any], where: str) -> None:
    """One channel row: a finite timestamp, and a valid label (non-empty string) and/or probabilities; the
    confidence, when given, in [0, 1]."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if row.get("timestamp") is None:
        raise InputError(f"{where} is missing field 'timestamp'")
    finite(row["timestamp"], where, "timestamp")
    label, probs = row.get("label"), row.get("probabilities")
    if probs is not None:
        check_probabilities(probs, where)
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise InputError(f"{where}: 'label' must be a non-empty string, got {label!r}"[:300])
    if label is None and probs is None:
        raise InputError(f"{where} is missing field 'label' or 'probabilities'")
    conf = row.get("confidence")
    if conf is not None:
        c = finite(conf, where, "confidence")
        if not 0 <= c <= 1:
            raise InputError(f"{where}: 'confidence' = {conf!r} is not in [0, 1]")


def check_face_record(rec: object, where: str) -> None:
    """A ferkit record used as the face channel: its time, box, face id and scores (when it has a face)."""
    if not isinstance(rec, dict):
        raise InputError(f"{where}: expected a ferkit record (a JSON object)")
    if rec.get("timestamp") is not None:
        finite(rec["timestamp"], where, "timestamp")
    fid = rec.get("face_id")
    if fid is None:
        return
    if not isinstance(fid, int) or isinstance(fid, bool):
        raise InputError(f"{where}: 'face_id' must be an integer, got {fid!r}"[:300])
    box = rec.get("box")
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise InputError(f"{where}: 'box' must be [x, y, w, h], got {box!r}"[:300])
    for i, v in enumerate(box):
        if finite(v, where, f"box[{i}]") < 0 and i >= 2:
            raise InputError(f"{where}: 'box' has a negative size")
    if rec.get("probabilities") is not None:
        check_probabilities(rec["probabilities"], where)
    emotion = rec.get("emotion")
    if emotion is not None and not isinstance(emotion, str):
        raise InputError(f"{where}: 'emotion' must be a string, got {emotion!r}"[:300])


def check_fuse_options(window: float | None, nearest: float | None, threshold: float,
                       weights: dict[str, float] | None) -> None:  # fmt: skip
    if nearest is not None and not (math.isfinite(nearest) and nearest >= 0):
        raise InputError(f"--nearest must be a finite number of seconds >= 0, got {nearest}")
    if nearest is None and (window is None or not (math.isfinite(window) and window >= MIN_WINDOW)):
        raise InputError(f"--window must be a finite number of seconds >= {MIN_WINDOW:g}, got {window}")
    if not (math.isfinite(threshold) and 0 <= threshold <= 1):
        raise InputError(f"--threshold must be a score in [0, 1], got {threshold}")
    if weights is not None:
        for name, w in weights.items():
            if not (math.isfinite(w) and w >= 0):
                raise InputError(f"--weights: {name}={w} must be a finite number >= 0")
        if not any(w > 0 for w in weights.values()):
            raise InputError("--weights: at least one channel needs a positive weight")


def check_span(t_min: float, t_max: float, window: float) -> None:
    """Refuse a window table of more than :data:`MAX_WINDOWS` rows (bounded by the input, not trusted from it)."""
    n = (t_max - t_min) / window
    if n > MAX_WINDOWS:
        raise InputError(
            f"timestamps span {t_min:g}–{t_max:g} s: {n:.3g} windows of {window:g} s (more than {MAX_WINDOWS:,}); "
            "check for a stray timestamp or use a larger --window"
        )


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
