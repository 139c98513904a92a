"""The raw folder's ``manifest.json``: every image kept (file, content hash, the hits and queries that found it),
what was skipped and why, and where each query's paging stopped, so a rerun continues instead of starting over.

It is rewritten atomically; image files are named by their content hash (``images/<sha256[:20]>.<ext>``), so one
photo found by several queries or on both sources is stored once and carries all of its queries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, read_json_file

FORMAT = "ferkit-stock-raw/1"
MANIFEST = "manifest.json"
IMAGES = "images"
_IMAGE_NAME = re.compile(r"^[0-9a-f]{20}\.(jpg|png|webp|gif|bmp|tif)$")
_LIMIT = 512 << 20


@dataclass
class QueryProgress:
    """Paging state of one (source, query): the next page to ask for, images kept, and whether it is finished."""

    next_page: int = 1
    kept: int = 0
    done: bool = False


@dataclass
class Manifest:
    """The raw folder's record (see the module doc)."""

    folder: Path
    classes: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha256 → record
    seen: dict[str, str | None] = field(default_factory=dict)  # "source:id" → sha256 (None: skipped)
    skipped: list[dict[str, str]] = field(default_factory=list)
    progress: dict[str, QueryProgress] = field(default_factory=dict)  # "source|query" → paging
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST

    def bump(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def query(self, source: str, query: str) -> QueryProgress:
        return self.progress.setdefault(f"{source}|{query}", QueryProgress())

    def add_query(self, sha: str, source: str, query: str, cls: str) -> bool:
        """Tag image ``sha`` with a query that found it; False when it already had that one."""
        entry = {"source": source, "query": query, "class": cls}
        queries = self.images[sha]["queries"]
        if entry in queries:
            return False
        queries.append(entry)
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "classes": self.classes,
            "counts": self.counts,
            "progress": {k: vars(v) for k, v in self.progress.items()},
            "images": self.images,
            "seen": self.seen,
            "skipped": self.skipped,
        }

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")


def load_manifest(folder: Path, must_exist: bool = False) -> Manifest:
    """The manifest of a raw folder (an empty one for a new folder unless ``must_exist``)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        if must_exist:
            raise InputError(f"{folder}: no {MANIFEST} here; is this the --out folder of `ferkit pull`?")
        return Manifest(folder)
    data = read_json_file(path, "pull manifest", _LIMIT)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a ferkit pull manifest (format {FORMAT!r} expected)")
    try:
        images = dict(data["images"])
        for sha, rec in images.items():
            if (
                not isinstance(rec, dict)
                or not isinstance(rec.get("file"), str)
                or not isinstance(rec["queries"], list)
            ):
                raise TypeError(sha)
        return Manifest(
            folder,
            classes={str(k): list(v) for k, v in dict(data["classes"]).items()},
            images=images,
            seen=dict(data["seen"]),
            skipped=list(data["skipped"]),
            progress={k: QueryProgress(**v) for k, v in dict(data["progress"]).items()},
            counts={str(k): int(v) for k, v in dict(data["counts"]).items()},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: damaged pull manifest ({type(e).__name__}: {e})") from None


def remove_orphans(man: Manifest) -> int:
    """Delete image files the manifest does not list (written just before an interrupted run could record them)
    and leftover temporary files; returns how many were removed."""
    folder = man.folder / IMAGES
    if not folder.is_dir():
        return 0
    listed = {Path(rec["file"]).name for rec in man.images.values()}
    removed = 0
    for f in folder.iterdir():
        orphan = _IMAGE_NAME.match(f.name) and f.name not in listed
        if f.is_file() and (orphan or (f.name.startswith(".") and f.name.endswith(".tmp"))):
            f.unlink()
            removed += 1
    return removed
