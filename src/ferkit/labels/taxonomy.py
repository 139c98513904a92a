"""Label taxonomies: which classes a model is trained on and how raw dataset labels map onto them.

A taxonomy is a TOML file (shipped ones live in ``ferkit/assets/taxonomies/``; ``load_taxonomy`` also takes a user
file)::

    name = "basic6"
    description = "..."
    extends = "basic7"                 # optional: inherit its aliases and ignored names
    kind = "multiclass"                # or "binary" (exactly 2 classes)
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise"]
    ignore = ["neutral"]               # raw names deliberately dropped
    [aliases]
    anger = "angry"                    # raw name -> class

With ``extends``, every class of the parent must be a class, alias or ignored name of the child, and the parent's
aliases follow their class: in a binary ``extends = "extended"`` file, ``smile_fake -> hard_case`` plus
``hard_case = "unclear"`` gives ``smile_fake -> unclear``. The common folder-name aliases live once, in ``basic7``.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ferkit.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TAXONOMY_DIR = Path(__file__).parents[1] / "assets" / "taxonomies"
#: Names of the shipped taxonomies.
TAXONOMIES: tuple[str, ...] = tuple(sorted(p.stem for p in TAXONOMY_DIR.glob("*.toml")))
KINDS = ("multiclass", "binary")
_KEYS = ("name", "description", "extends", "kind", "classes", "aliases", "ignore")
_COMMENT = re.compile(r"\s*\([^()]*\)\s*$")


def label_key(raw: str) -> str:
    """Normal form of a label: lower case, trimmed, runs of spaces, hyphens and underscores made one underscore."""
    return re.sub(r"[\s_-]+", "_", str(raw).strip().lower()).strip("_")


def _candidates(raw: str) -> list[str]:
    """Keys to try for a raw label: as is, then without a trailing parenthesised comment."""
    full = label_key(raw)
    bare = label_key(_COMMENT.sub("", str(raw).strip()))
    return [full] if bare in ("", full) else [full, bare]


class UnknownLabelError(InputError):
    """A raw label that is neither a class, an alias nor an ignored name of a taxonomy."""

    def __init__(self, label: str, taxonomy: Taxonomy) -> None:
        self.label, self.taxonomy = label, taxonomy.name
        super().__init__(
            f"label {label!r} is not in taxonomy {taxonomy.name!r}: classes are {', '.join(taxonomy.classes)}"
            + (f"; ignored: {', '.join(sorted(taxonomy.ignore))}" if taxonomy.ignore else "")
            + " (add it to the taxonomy's aliases or ignore list)"
        )


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of classes, an alias table (raw name -> class) and raw names that are dropped."""

    name: str
    classes: tuple[str, ...]
    aliases: Mapping[str, str] = field(hash=False)
    ignore: frozenset[str]
    description: str = ""
    kind: str = "multiclass"

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        if not classes or len(set(classes)) != len(classes):
            raise InputError(f"taxonomy {self.name!r}: classes must be a non-empty list without repeats")
        if bad := [c for c in classes if label_key(c) != c]:
            raise InputError(f"taxonomy {self.name!r}: class names must be lower case with underscores: {bad}")
        if self.kind not in KINDS:
            raise InputError(f"taxonomy {self.name!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "binary" and len(classes) != 2:
            raise InputError(f"taxonomy {self.name!r}: a binary taxonomy has exactly 2 classes, not {len(classes)}")
        aliases = {label_key(k): v for k, v in self.aliases.items() if label_key(k) != v}
        if bad := sorted(k for k, v in aliases.items() if v not in classes):
            raise InputError(f"taxonomy {self.name!r}: aliases {bad} point at names that are not classes")
        ignore = frozenset(label_key(k) for k in self.ignore)
        if clash := sorted(ignore & (set(classes) | set(aliases))):
            raise InputError(f"taxonomy {self.name!r}: {clash} both ignored and a class or alias")
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "aliases", MappingProxyType(aliases))
        object.__setattr__(self, "ignore", ignore)

    def map(self, raw: str) -> str | None:
        """The class of a raw label (class name or alias), None for an ignored name; else ``UnknownLabelError``."""
        for key in _candidates(raw):
            if key in self.classes:
                return key
            if key in self.aliases:
                return self.aliases[key]
            if key in self.ignore:
                return None
        raise UnknownLabelError(raw, self)

    def index(self, cls: str) -> int:
        """Position of a class (the model's output index)."""
        try:
            return self.classes.index(cls)
        except ValueError:
            raise UnknownLabelError(cls, self) from None


def _fail(path: Path, key: str, msg: str) -> InputError:
    return InputError(f"{path}: {key}: {msg}")


def _str_list(path: Path, data: dict, key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(path, key, "must be a list of non-empty strings")
    return value


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing or unparsable file is an ``InputError`` naming ``what`` it should be."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: not a readable TOML {what} file: {e}") from None


def _read(path: Path) -> dict[str, Any]:
    data = read_toml(path, "taxonomy")
    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, _KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _fail(path, key, f"unknown key ({hint}allowed: {', '.join(_KEYS)})")
    return data


def _parent_path(path: Path, extends: str) -> Path:
    if extends.endswith(".toml"):
        parent = (path.parent / extends).resolve()
        if not parent.is_file():
            raise _fail(path, "extends", f"{parent} not found")
        return parent
    if extends in TAXONOMIES:
        return (TAXONOMY_DIR / f"{extends}.toml").resolve()
    raise _fail(path, "extends", f"unknown taxonomy {extends!r} (shipped: {', '.join(TAXONOMIES)}; or a .toml path)")


def _load(path: Path, chain: tuple[Path, ...]) -> Taxonomy:
    data = _read(path)
    name = data.get("name", path.stem)
    for key in ("name", "description", "extends", "kind"):
        if key in data and not isinstance(data[key], str):
            raise _fail(path, key, "must be a string")
    if "classes" not in data:
        raise _fail(path, "classes", "missing (the ordered list of class names)")
    classes = _str_list(path, data, "classes")
    if not classes:
        raise _fail(path, "classes", "must list at least one class")
    if bad := [c for c in classes if label_key(c) != c]:
        raise _fail(path, "classes", f"names must be lower case with underscores, e.g. {label_key(bad[0])!r}")
    if len(set(classes)) != len(classes):
        raise _fail(path, "classes", "repeats a class")
    kind = data.get("kind", "multiclass")
    if kind not in KINDS:
        raise _fail(path, "kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "binary" and len(classes) != 2:
        raise _fail(path, "classes", f"a binary taxonomy has exactly 2 classes, not {len(classes)}")
    raw_aliases = data.get("aliases", {})
    if not isinstance(raw_aliases, dict):
        raise _fail(path, "aliases", "must be a table of raw name = class")
    own: dict[str, str] = {}
    for raw, cls in raw_aliases.items():
        if not isinstance(cls, str) or cls not in classes:
            raise _fail(path, f"aliases.{raw}", f"{cls!r} is not a class of {name!r} ({', '.join(classes)})")
        key = label_key(raw)
        if key in classes and key != cls:
            raise _fail(path, f"aliases.{raw}", f"{raw!r} is itself a class of {name!r}")
        if own.get(key, cls) != cls:
            raise _fail(path, f"aliases.{raw}", f"same name as another alias ({key!r}) with another class")
        if key != cls:
            own[key] = cls
    own_ignore = {label_key(x) for x in _str_list(path, data, "ignore")}
    if clash := sorted(own_ignore & (set(classes) | set(own))):
        raise _fail(path, "ignore", f"{clash} also a class or alias")

    aliases: dict[str, str] = {}
    ignore: set[str] = set()
    if "extends" in data:
        parent_path = _parent_path(path, data["extends"])
        if parent_path in chain or parent_path == path.resolve():
            cycle = " -> ".join(p.name for p in (*chain, path.resolve(), parent_path))
            raise _fail(path, "extends", f"cycle: {cycle}")
        parent = _load(parent_path, (*chain, path.resolve()))

        def local(cls: str) -> str | None:
            return cls if cls in classes else own.get(cls)

        if missing := [c for c in parent.classes if local(c) is None and c not in own_ignore]:
            raise _fail(
                path, "extends", f"classes {missing} of {parent.name!r} are not classes, aliases or ignored names here"
            )
        for raw, cls in parent.aliases.items():
            target = local(cls)
            if target is None:
                ignore.add(raw)
            else:
                aliases[raw] = target
        ignore |= parent.ignore
    # This file's own classes, aliases and ignored names override what it inherits.
    aliases = {k: v for k, v in aliases.items() if k not in classes and k not in own_ignore} | own
    ignore = (ignore - set(classes) - set(aliases)) | own_ignore
    return Taxonomy(name, tuple(classes), aliases, frozenset(ignore), data.get("description", ""), kind)


def load_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """A shipped taxonomy by name (see ``TAXONOMIES``) or a user TOML file; invalid files raise ``InputError``."""
    if isinstance(name_or_path, str) and name_or_path in TAXONOMIES:
        return _load(TAXONOMY_DIR / f"{name_or_path}.toml", ())
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(f"unknown taxonomy {str(name_or_path)!r}: not a file, and not one of {', '.join(TAXONOMIES)}")
    return _load(path, ())


@dataclass
class LabelReport:
    """What happened to each distinct raw label when mapping a dataset onto a taxonomy."""

    mapped: dict[str, dict[str, int]]  # class -> {raw label: count}
    ignored: dict[str, int]
    unknown: dict[str, int]

    @property
    def counts(self) -> dict[str, int]:
        """Samples per class."""
        return {c: sum(raws.values()) for c, raws in self.mapped.items()}

    def summary(self) -> str:
        """One line per class, then the ignored and unknown raw labels with their counts."""

        def items(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))

        lines = [
            f"{c}: {sum(raws.values())}" + (f" ({items(raws)})" if raws else "") for c, raws in self.mapped.items()
        ]
        if self.ignored:
            lines.append(f"ignored: {sum(self.ignored.values())} ({items(self.ignored)})")
        if self.unknown:
            lines.append(f"UNKNOWN (not mapped): {sum(self.unknown.values())} ({items(self.unknown)})")
        return "\n".join(lines)


def map_labels(raw_labels: Iterable[str], taxonomy: Taxonomy) -> tuple[list[str | None], LabelReport]:
    """Map raw labels; ignored and unknown ones give None (unknown ones are counted in ``report.unknown``)."""
    report = LabelReport({c: {} for c in taxonomy.classes}, {}, {})
    memo: dict[str, tuple[str, str | None]] = {}
    out: list[str | None] = []
    for raw in raw_labels:
        if raw not in memo:
            try:
                cls = taxonomy.map(raw)
                memo[raw] = ("ignored", None) if cls is None else ("mapped", cls)
            except UnknownLabelError:
                memo[raw] = ("unknown", None)
        status, cls = memo[raw]
        if cls is not None:
            report.mapped[cls][raw] = report.mapped[cls].get(raw, 0) + 1
        else:
            bucket = report.ignored if status == "ignored" else report.unknown
            bucket[raw] = bucket.get(raw, 0) + 1
        out.append(cls)
    return out, report
