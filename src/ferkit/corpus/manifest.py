"""The manifest of a collection: CSV or YAML rows with ``path`` and ``title`` plus any columns (genre, year, …).

Relative paths resolve against ``root`` (default: the manifest's folder). Each row becomes a :class:`Video` whose
``video_id`` (a file-name-safe form of the title) names its Parquet part; titles must therefore be unique.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError

REQUIRED = ("path", "title")
#: Columns every Parquet part has; a manifest column may not reuse these names.
RESERVED = frozenset(
    {"video_id", "duration_s", "time_pct", "frame_index", "timestamp", "face_id", "model", "models", "emotion"}
    | {"confidence", "sentiment", "smoothed_emotion", "detection_score", "alignment"}
)
MAX_MANIFEST_BYTES = 64 << 20
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Video:
    """One manifest row: the file, its title and id, and the manifest's other columns (JSON-able values)."""

    video_id: str
    title: str
    path: str  # as written in the manifest (the records' ``path``)
    file: Path  # resolved against the root
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """The videos of a collection in manifest order and the names of its extra columns."""

    source: Path
    videos: list[Video]
    columns: list[str]


def video_id(title: str) -> str:
    """A file-name-safe id from a title (letters, digits, ``-``, ``_``, ``.``; at most 80 characters)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", title.strip()).strip("._")[:80]
    return slug or "video"


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        if path.is_dir():
            raise InputError(f"{path}: manifest is a folder, expected a CSV or YAML file")
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise InputError(f"{path}: manifest is larger than {MAX_MANIFEST_BYTES >> 20} MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: manifest is not UTF-8 (byte {e.start})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_rows(path, text)
    if path.suffix.lower() not in (".csv", ".tsv"):
        raise InputError(f"{path}: manifest must be .csv, .tsv, .yaml or .yml")
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    try:
        rows = [dict(r) for r in reader]
    except csv.Error as e:
        raise InputError(f"{path}: not a readable CSV manifest ({e})") from None
    for i, r in enumerate(rows, 2):
        if None in r or None in r.values():
            raise InputError(f"{path}: line {i} has {'more' if None in r else 'fewer'} fields than the header")
    return [{k.strip(): _scalar(v) for k, v in r.items()} for r in rows]


def _scalar(text: str) -> Any:
    """A CSV cell as int, float or stripped text (so ``year`` sorts as a number)."""
    text = text.strip()
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        return value if value == value and abs(value) != float("inf") else text
    return text


def _yaml_rows(path: Path, text: str) -> list[dict[str, Any]]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0][:120]})") from None
    if isinstance(doc, dict) and "videos" in doc:
        doc = doc["videos"]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise InputError(f"{path}: a YAML manifest is a list of mappings (or 'videos:' holding one)")
    rows = []
    for i, r in enumerate(doc, 1):
        bad = [k for k, v in r.items() if not isinstance(k, str) or isinstance(v, (dict, list))]
        if bad:
            raise InputError(f"{path}: video {i}: keys must be text and values scalars ({bad[0]!r})")
        rows.append({k.strip(): v.strip() if isinstance(v, str) else v for k, v in r.items()})
    return rows


def load_manifest(path: Path | str, root: Path | str | None = None) -> Manifest:
    """Read and check a manifest: ``InputError`` (one line) for a missing or unreadable file, no rows, a missing
    ``path``/``title`` column or value, a column name that is not an identifier or is reserved, duplicate titles
    or duplicate files. Videos that do not exist are not refused here (the run reports them and goes on)."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise InputError(f"{path}: manifest has no videos")
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(f"{path}: manifest lacks the column(s) {', '.join(missing)} (needs path and title)")
    for c in columns:
        if c not in REQUIRED and (not _COLUMN.match(c) or c in RESERVED or c.startswith(("p_", "sp_", "box_"))):
            raise InputError(f"{path}: manifest column {c!r} is reserved or not a plain name (letters, digits, _)")
    base = Path(root) if root is not None else path.parent
    videos, ids, files = [], {}, {}
    for i, r in enumerate(rows, 1):
        title, where = r.get("title"), r.get("path")
        if title in (None, "") or where in (None, ""):
            raise InputError(f"{path}: video {i} has an empty path or title")
        title, where = str(title), str(where)
        vid = video_id(title)
        if vid in ids:
            raise InputError(f"{path}: videos {ids[vid]} and {i} have the same title (as a file name: {vid!r})")
        file = Path(where) if Path(where).is_absolute() else base / where
        key = str(file.resolve())
        if key in files:
            raise InputError(f"{path}: videos {files[key]} and {i} name the same file {where!r}")
        ids[vid], files[key] = i, i
        extra = {c: r.get(c) for c in columns if c not in REQUIRED}
        videos.append(Video(vid, title, where, file, extra))
    return Manifest(path, videos, [c for c in columns if c not in REQUIRED])
