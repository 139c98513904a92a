"""Weak supervision: label images by keyword rules over their tags (e.g. the search terms of stock photos).

Tags file: CSV with columns ``file,tags`` (tags split on ``;``, ``|`` or ``,``), or JSON ``{"file": ["tag", ...]}`` or
``[{"file": ..., "tags": [...]}]``. Rules: a TOML file or dict ``{class: [[kw, kw, ...], [kw], ...]}`` -- an image
matches a class when all keywords of at least one of its keyword sets are among its tags; an optional
``taxonomy = "<name or path>"`` key checks that every rule class is a class of that taxonomy. An image matching
exactly one class is labelled; conflicts (2+ classes), empty matches and rows naming missing files are dropped and
counted in a ``WeakReport``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ferkit.errors import InputError
from ferkit.labels.taxonomy import load_taxonomy, read_toml
from ferkit.training.samples import Sample

Rules = dict[str, list[frozenset[str]]]
_SPLIT = re.compile(r"[;|,]")


def normalize_tag(tag: str) -> str:
    """Lower case, trimmed, inner whitespace collapsed."""
    return " ".join(str(tag).lower().split())


@dataclass
class WeakReport:
    """Outcome of keyword labelling: labelled counts per class and the dropped files."""

    labelled: dict[str, int] = field(default_factory=dict)
    conflicts: list[tuple[str, list[str]]] = field(default_factory=list)  # (file, matching classes)
    empty: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts: labelled (total and per class), conflicts, empty, missing."""
        return {
            "labelled": sum(self.labelled.values()),
            "per_class": dict(self.labelled),
            "conflicts": len(self.conflicts),
            "empty": len(self.empty),
            "missing": len(self.missing),
        }


def _keyword_set(cls: str, i: int, value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InputError(
            f'rules: {cls}[{i}] must be a list of keywords that must all be present, e.g. [["happy", "smiling"]]'
        )
    items = list(value)
    kws = [normalize_tag(k) for k in items if isinstance(k, str)]
    if len(kws) != len(items) or not kws or not all(kws):
        raise InputError(f"rules: {cls}[{i}] must be a non-empty list of non-empty strings, not {value!r}")
    return frozenset(kws)


def load_rules(path_or_dict: str | Path | Mapping[str, Any]) -> Rules:
    """Keyword rules from a TOML file or dict: class -> list of keyword sets (all keywords of one set must match)."""
    if isinstance(path_or_dict, Mapping):
        data, where = dict(path_or_dict), "rules"
    else:
        path = Path(path_or_dict)
        data = read_toml(path, "rules")
        where = str(path)
    taxonomy = data.pop("taxonomy", None)
    if not data:
        raise InputError(f"{where}: no rules (expected class = [[keyword, ...], ...])")
    rules: Rules = {}
    for cls, sets in data.items():
        if isinstance(sets, str) or not isinstance(sets, Iterable):
            raise InputError(f'{where}: {cls} must be a list of keyword sets, e.g. [["happy", "smiling"], ["joy"]]')
        rules[str(cls)] = [_keyword_set(cls, i, s) for i, s in enumerate(sets)]
        if not rules[str(cls)]:
            raise InputError(f"{where}: {cls} has no keyword sets")
    if taxonomy is not None:
        tax = load_taxonomy(taxonomy)
        if bad := [c for c in rules if c not in tax.classes]:
            raise InputError(f"{where}: rule classes {bad} are not classes of {tax.name!r} ({', '.join(tax.classes)})")
    return rules


def label_by_keywords(tags: Iterable[str], rules: Rules | Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the class if exactly one class matches else None, every matching class in rule order)."""
    tagset = {normalize_tag(t) for t in tags}
    loaded = rules if _is_loaded(rules) else load_rules(rules)
    matches = [cls for cls, sets in loaded.items() if any(s <= tagset for s in sets)]
    return (matches[0] if len(matches) == 1 else None), matches


def _is_loaded(rules: Any) -> bool:
    return isinstance(rules, dict) and all(
        isinstance(v, list) and all(isinstance(s, frozenset) for s in v) for v in rules.values()
    )


def _split_tags(value: Any) -> list[str]:
    items = _SPLIT.split(value) if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise InputError(f"tags must be a string or a list of strings, not {value!r}")
    return [t for t in (normalize_tag(x) for x in items) if t]


def load_tags(tags_file: str | Path) -> dict[str, list[str]]:
    """file -> normalised tags from a CSV (``file,tags``) or JSON tags file; repeated files merge their tags."""
    path = Path(tags_file)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: tags file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: unreadable tags file: {e}") from None
    rows: list[tuple[str, Any]]
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: invalid JSON: {e}") from None
        if isinstance(data, dict):
            rows = list(data.items())
        elif isinstance(data, list) and all(isinstance(r, dict) and {"file", "tags"} <= r.keys() for r in data):
            rows = [(r["file"], r["tags"]) for r in data]
        else:
            raise InputError(f'{path}: expected {{"file": [tags]}} or [{{"file": ..., "tags": [...]}}]')
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or not {"file", "tags"} <= {f.strip().lower() for f in reader.fieldnames}:
            raise InputError(f"{path}: a CSV tags file needs the columns file,tags (found {reader.fieldnames})")
        cols = {f.strip().lower(): f for f in reader.fieldnames}
        # Unquoted commas spill tags into extra fields, which DictReader keeps under the key None.
        rows = [(r[cols["file"]], ";".join([r[cols["tags"]] or "", *(r.get(None) or [])])) for r in reader]
    out: dict[str, list[str]] = {}
    for i, (file, tags) in enumerate(rows):
        if not isinstance(file, str) or not file.strip():
            raise InputError(f"{path}: row {i + 1}: empty or invalid file name {file!r}")
        try:
            parsed = _split_tags(tags)
        except InputError as e:
            raise InputError(f"{path}: row {i + 1} ({file}): {e}") from None
        merged = out.setdefault(file.strip().replace("\\", "/"), [])
        merged.extend(t for t in parsed if t not in merged)
    if not out:
        raise InputError(f"{path}: no tagged files")
    return out


def weak_tag_source(
    folder: Path, tags_file: Path, rules: str | Path | Mapping[str, Any], name: str
) -> tuple[list[Sample], WeakReport]:
    """Samples (key ``name:file``, raw label = the matched class) for the tagged images of ``folder``."""

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found")
    loaded = load_rules(rules)
    report = WeakReport(labelled={c: 0 for c in loaded})
    samples: list[Sample] = []
    for file, tags in load_tags(tags_file).items():
        rel = PurePosixPath(file)
        if rel.is_absolute() or ".." in rel.parts:
            raise InputError(f"{tags_file}: file {file!r} must be a path inside {folder}")
        path = folder / rel
        if not path.is_file():
            report.missing.append(file)
            continue
        label, matches = label_by_keywords(tags, loaded)
        if label is not None:
            report.labelled[label] += 1
            samples.append(Sample(key=f"{name}:{file}", raw_label=label, source=name, path=path))
        elif matches:
            report.conflicts.append((file, matches))
        else:
            report.empty.append(file)
    return samples, report
