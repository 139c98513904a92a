"""The pull config: classes and their search queries, per-query limits, orientation and size filters.

TOML (or YAML) like::

    per_query = 80            # images kept per query (after filters and de-duplication)
    orientation = "portrait"  # any | landscape | portrait | square
    min_width = 300
    [classes]
    happy = ["happy smiling", "joyful portrait"]
    sad = ["sad face"]

A query's keywords (its words, split on spaces, ``+`` and commas) become the image's tags and the class's keyword
rule, so the ``weak_tags`` training source labels an image by the queries that found it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.labels.taxonomy import read_toml

ORIENTATIONS = ("any", "landscape", "portrait", "square")
IMAGE_SIZES = ("small", "medium", "large", "original")
_KEYWORD_SPLIT = re.compile(r"[\s+,]+")


def query_keywords(query: str) -> list[str]:
    """The keywords of a query, lower case, in order, without repeats: ``"Happy+smiling face"`` → happy, smiling,
    face."""
    out: list[str] = []
    for word in _KEYWORD_SPLIT.split(query.lower()):
        if word and word not in out:
            out.append(word)
    return out


@dataclass
class PullConfig:
    """What ``ferkit pull`` fetches (see the module doc); every number is bounded so each loop ends."""

    classes: dict[str, list[str]]
    per_query: int = 80
    per_page: int = 40
    max_pages: int = 20
    orientation: str = "any"
    min_width: int = 0
    min_height: int = 0
    image_size: str = "medium"  # the rendition downloaded (Pexels src key; Pixabay webformat or large)
    max_image_mb: float = 20.0
    timeout_s: float = 20.0
    retries: int = 4
    max_wait_s: float = 60.0  # longest single wait for a rate-limit reset

    def queries(self) -> list[tuple[str, str]]:
        """(class, query) pairs in config order."""
        return [(cls, q) for cls, qs in self.classes.items() for q in qs]


_INTS = {"per_query": (1, 100_000), "per_page": (3, 200), "max_pages": (1, 10_000), "retries": (0, 20)}
_INTS.update({"min_width": (0, 100_000), "min_height": (0, 100_000)})
_FLOATS = {"max_image_mb": (0.001, 1000.0), "timeout_s": (0.1, 600.0), "max_wait_s": (0.0, 3600.0)}


def _classes(raw: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(raw, dict) or not raw:
        raise InputError(f'{where}: [classes] must map each class to its queries, e.g. happy = ["happy smiling"]')
    out: dict[str, list[str]] = {}
    for cls, queries in raw.items():
        if isinstance(queries, str):
            queries = [queries]
        if not isinstance(queries, list) or not queries or not all(isinstance(q, str) for q in queries):
            raise InputError(f"{where}: classes.{cls} must be a non-empty list of query strings")
        if not str(cls).strip() or any(not query_keywords(q) for q in queries):
            raise InputError(f"{where}: classes.{cls}: a class name or query is empty")
        if any(len(q) > 100 for q in queries):
            raise InputError(f"{where}: classes.{cls}: queries are at most 100 characters (the APIs' limit)")
        out[str(cls).strip()] = list(dict.fromkeys(" ".join(q.split()) for q in queries))
    return out


def config_from_dict(raw: Any, where: str = "config") -> PullConfig:
    """Validate a parsed config; ``InputError`` naming the first bad key."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a table/mapping at the top level")
    known = {"classes", "orientation", "image_size", *_INTS, *_FLOATS}
    if unknown := sorted(set(raw) - known):
        raise InputError(f"{where}: {unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {"classes": _classes(raw.get("classes"), where)}
    for key, (lo, hi) in _INTS.items():
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InputError(f"{where}: {key}: expected a whole number from {lo} to {hi}, got {v!r}")
            kwargs[key] = v
    for key, (lo, hi) in _FLOATS.items():
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"{where}: {key}: expected a number from {lo} to {hi}, got {v!r}")
            kwargs[key] = float(v)
    for key, choices in (("orientation", ORIENTATIONS), ("image_size", IMAGE_SIZES)):
        if key in raw:
            if raw[key] not in choices:
                raise InputError(f"{where}: {key}: {raw[key]!r} is not one of {', '.join(choices)}")
            kwargs[key] = raw[key]
    return PullConfig(**kwargs)


def load_pull_config(path: str | Path) -> PullConfig:
    """Read a ``.toml`` or ``.yaml``/``.yml`` pull config (``InputError`` naming the file and the bad key)."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        raw = _read_yaml(path)
    elif path.suffix.lower() == ".toml":
        raw = read_toml(path, "pull config")
    else:
        raise InputError(f"{path}: a pull config is .toml, .yaml or .yml")
    return config_from_dict(raw, str(path))


def _read_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise InputError(
            f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the config as TOML"
        ) from None
    if not path.is_file():
        raise InputError(f"{path}: pull config file not found")
    try:
        return yaml.safe_load(path.read_bytes())  # PyYAML decodes UTF-8/16 itself and refuses other bytes
    except OSError as e:
        raise InputError(f"{path}: cannot read the pull config ({e.strerror})") from None
    except (yaml.YAMLError, RecursionError) as e:
        raise InputError(f"{path}: not a readable YAML pull config: {' '.join(str(e).split())[:200]}") from None
