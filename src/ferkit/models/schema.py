"""Typed, range-checked reading of the small JSON files models come with (cards, spec files, calibration files,
reliability reports): each helper raises :class:`~ferkit.errors.ModelError` with one line that names the file, the
key and what is wrong."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ferkit.errors import ModelError
from ferkit.media.files import read_json_file

#: Largest JSON file a model may come with (cards with metrics are a few hundred KB).
MAX_JSON_BYTES = 16 << 20
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def read_json_object(path: Path | str, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (UTF-8, at most :data:`MAX_JSON_BYTES`, not nested without end)."""
    data = read_json_file(path, what, MAX_JSON_BYTES, ModelError)
    if not isinstance(data, dict):
        raise ModelError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def number(value: Any, key: str, where: object, lo: float, hi: float, *, integer: bool = False) -> float:
    """``value`` as a finite number in ``[lo, hi]`` (bools, strings and lists refused; ``integer``: whole)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{where}: {key} must be a number, got {value!r}"[:300])
    if (isinstance(value, int) and abs(value) > 2**62) or not math.isfinite(float(value)):
        raise ModelError(f"{where}: {key} must be a finite number in [{lo:g}, {hi:g}], got {value!r}"[:300])
    if integer and value != int(value):
        raise ModelError(f"{where}: {key} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ModelError(f"{where}: {key} must be in [{lo:g}, {hi:g}], got {value!r}")
    return int(value) if integer else float(value)


def text(value: Any, key: str, where: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ModelError(f"{where}: {key} must be a non-empty string, got {value!r}"[:300])
    return value


def class_list(value: Any, key: str, where: object) -> list[str]:
    """A list of at least two distinct, non-empty class names."""
    if not isinstance(value, list) or len(value) < 2 or len(value) > 10_000:
        raise ModelError(f"{where}: {key} must be a list of at least two class names, got {value!r}"[:300])
    for c in value:
        if not isinstance(c, str) or not c.strip():
            raise ModelError(f"{where}: {key} holds {c!r}, not a class name"[:300])
    if len(set(value)) != len(value):
        dup = sorted({c for c in value if value.count(c) > 1})
        raise ModelError(f"{where}: {key} names {', '.join(dup)} twice")
    return list(value)


def sha256_hex(value: Any, key: str, where: object) -> str:
    """A SHA-256 as 64 hex digits (returned in lower case)."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ModelError(f"{where}: {key} must be a SHA-256 (64 hex digits), got {value!r}"[:300])
    return value.lower()


def inside(folder: Path, name: Any, key: str, where: object) -> Path:
    """``folder / name`` for a relative ``name`` that stays inside ``folder`` and is a regular file."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"{where}: {key} must be a file name, got {name!r}")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise ModelError(f"{where}: {key} {name!r} must name a file inside the model folder")
    path = folder / rel
    if not path.is_file():
        raise ModelError(f"{where}: {key} {name!r}: model file missing or not a regular file")
    return path
