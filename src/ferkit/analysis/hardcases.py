"""Hard-case rules and the ``speech_action`` flag, as data: a TOML file of boolean conditions over action units.

Each rule has a reason ``code``, a ``when`` condition and a ``min_duration`` (seconds it must hold in video before it
fires; stills fire at once). A condition is a Python-like boolean expression over these names only:

* ``AU01`` … ``AU43``, ``AU12_L``, ``AU12_R`` …: the AU is present (presence probability ≥ the rule's ``threshold``,
  default 0.5); ``p_AU12`` and ``i_AU12`` are its probability and 0–1 intensity, for comparisons (``i_AU26 > 0.4``);
* ``unilateral_AU12`` (also for AU02 and AU14): present on exactly one side;
* ``speaking`` (the face's speaking probability ≥ 0.5; false for stills), ``p_speaking``;
* ``active``: how many AUs are present (bilateral keys only); ``pitch``, ``yaw``, ``roll``: head pose in degrees
  (pitch > 0: chin up, head tilted back), when the landmarker gives it;
* ``and``, ``or``, ``not``, parentheses, comparisons (``<``, ``<=``, ``>``, ``>=``) and numbers.

``[speech_action]`` defines the one ``speech_action`` flag the same way. The shipped file is
``ferkit/assets/rules/hard_cases.toml``; ``--rules FILE`` takes an edited copy. A malformed file is an ``InputError``
naming the rule and the key.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.labels.taxonomy import read_toml

RULES_FILE = Path(__file__).parents[1] / "assets" / "rules" / "hard_cases.toml"
SIDED = ("AU02", "AU12", "AU14")
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_RULE_KEYS = ("code", "description", "when", "min_duration", "threshold", "kind")
_TOP_KEYS = ("version", "description", "rules", "speech_action")
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_NUMERIC = ("active", "pitch", "yaw", "roll", "p_speaking")

Condition = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True)
class FaceSignals:
    """What the rules look at for one face in one frame."""

    aus: Mapping[str, float]  # presence probabilities, keys AU01 … AU43 and AUxx_L / AUxx_R
    intensity: Mapping[str, float]  # 0–1, same keys
    speaking: float | None = None  # probability; None for stills
    pose: tuple[float, float, float] | None = None  # (pitch, yaw, roll) in degrees


@dataclass(frozen=True)
class Rule:
    """One hard-case rule: its reason code, condition and how long it must hold (seconds)."""

    code: str
    description: str
    when: str
    min_duration: float
    threshold: float
    test: Condition = field(repr=False, compare=False)


def _names(aus: list[str]) -> set[str]:
    """Every name a condition may use, given the AU keys the model produces."""
    base = {a for a in aus if "_" not in a}
    sided = {a.split("_")[0] for a in aus if a.endswith(("_L", "_R"))}
    return {*aus, *(f"p_{a}" for a in aus), *(f"i_{a}" for a in aus), *(f"unilateral_{a}" for a in sided),
            "speaking", *_NUMERIC} | base  # fmt: skip


def compile_condition(text: str, known: set[str], where: str) -> Condition:
    """Compile ``text`` into a function of a signal mapping; ``InputError`` naming ``where`` if it is not valid."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise InputError(f"{where}: not a valid condition ({e.msg}): {text!r}") from None

    def build(node: ast.AST) -> Callable[[Mapping[str, Any]], Any]:
        if isinstance(node, ast.BoolOp):
            parts = [build(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda s: all(p(s) for p in parts)
            return lambda s: any(p(s) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = build(node.operand)
            return lambda s: not inner(s)
        if isinstance(node, ast.Name):
            if node.id not in known:
                close = sorted(n for n in known if n.lower() == node.id.lower())
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise InputError(f"{where}: unknown name {node.id!r}{hint}")
            name = node.id
            return lambda s: s.get(name)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            value = float(node.value)
            if not math.isfinite(value):
                raise InputError(f"{where}: numbers must be finite")
            return lambda s: value
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            terms = [build(node.left), *(build(c) for c in node.comparators)]
            ops = [_COMPARE[type(op)] for op in node.ops]

            def compare(s: Mapping[str, Any]) -> bool:
                values = [t(s) for t in terms]
                if any(v is None for v in values):  # e.g. pitch unknown: the comparison does not hold
                    return False
                return all(op(a, b) for op, a, b in zip(ops, values, values[1:], strict=False))

            return compare
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            inner_value = build(node.operand)
            return lambda s: -inner_value(s)
        raise InputError(f"{where}: only AU names, and/or/not, comparisons and numbers are allowed: {text!r}")

    fn = build(tree)
    return lambda s: bool(fn(s))


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise InputError(f"{where}: must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _rule(entry: Any, path: Path, label: str, known: set[str]) -> Rule:
    if not isinstance(entry, dict):
        raise InputError(f"{path}: {label}: must be a table")
    for key in entry:
        if key not in _RULE_KEYS:
            raise InputError(f"{path}: {label}: unknown key {key!r} (allowed: {', '.join(_RULE_KEYS)})")
    code = _text(entry.get("code", "speech_action" if label == "speech_action" else None), f"{path}: {label}: code")
    if not _CODE.match(code):
        raise InputError(f"{path}: {label}: code must be lower_snake_case, got {code!r}")
    where = f"{path}: rule {code!r}"
    when = _text(entry.get("when"), f"{where}: when")
    return Rule(
        code=code,
        description=str(entry.get("description", "")),
        when=when,
        min_duration=_number(entry.get("min_duration", 0.0), f"{where}: min_duration", 0.0, 3600.0),
        threshold=_number(entry.get("threshold", 0.5), f"{where}: threshold", 0.0, 1.0),
        test=compile_condition(when, known, f"{where}: when"),
    )


@dataclass(frozen=True)
class RuleSet:
    """The hard-case rules and the ``speech_action`` definition of one rules file."""

    rules: tuple[Rule, ...]
    speech_action: Rule
    path: Path

    @classmethod
    def load(cls, path: str | Path | None, au_keys: list[str]) -> RuleSet:
        """Read and check a rules file (``None``: the shipped one) against the AU keys the AU model produces."""
        path = Path(path) if path is not None else RULES_FILE
        data = read_toml(path, "hard-case rules")
        for key in data:
            if key not in _TOP_KEYS:
                raise InputError(f"{path}: unknown key {key!r} (allowed: {', '.join(_TOP_KEYS)})")
        known = _names(au_keys)
        entries = data.get("rules", [])
        if not isinstance(entries, list) or not entries:
            raise InputError(f"{path}: rules: must be a non-empty list of [[rules]] tables")
        rules = tuple(_rule(e, path, f"rules[{i}]", known) for i, e in enumerate(entries))
        codes = [r.code for r in rules]
        if len(set(codes)) != len(codes):
            dup = next(c for c in codes if codes.count(c) > 1)
            raise InputError(f"{path}: rule {dup!r}: code used twice")
        if "speech_action" not in data:
            raise InputError(f"{path}: speech_action: missing (a [speech_action] table with a 'when' condition)")
        return cls(rules, _rule(data["speech_action"], path, "speech_action", known), path)


def signal_map(signals: FaceSignals, threshold: float = 0.5) -> dict[str, Any]:
    """The names a condition reads, for one face."""
    out: dict[str, Any] = {}
    for key, p in signals.aus.items():
        out[key] = p >= threshold
        out[f"p_{key}"] = p
        out[f"i_{key}"] = signals.intensity.get(key, 0.0)
    for base in SIDED:
        if f"{base}_L" in signals.aus:
            out[f"unilateral_{base}"] = out[f"{base}_L"] != out[f"{base}_R"]
    out["active"] = sum(1 for k, p in signals.aus.items() if "_" not in k and p >= threshold)
    out["p_speaking"] = signals.speaking
    out["speaking"] = signals.speaking is not None and signals.speaking >= 0.5
    pitch, yaw, roll = signals.pose if signals.pose is not None else (None, None, None)
    out.update(pitch=pitch, yaw=yaw, roll=roll)
    return out


class RuleTracker:
    """Applies a :class:`RuleSet` face by face; in video a rule fires once its condition has held ``min_duration``
    seconds on the same track (a gap of more than ``max_gap`` seconds restarts the clock)."""

    def __init__(self, rules: RuleSet, max_gap: float = 1.0) -> None:
        self.rules, self.max_gap = rules, max_gap
        self._since: dict[tuple[int | None, str], tuple[float, float]] = {}  # (track, code) -> (start, last seen)

    def state(self, tracks: Iterable[int]) -> list[list]:
        """The running rule clocks of ``tracks`` as plain JSON values (resume checkpoints)."""
        keep = set(tracks)
        return [[track, code, start, last] for (track, code), (start, last) in self._since.items() if track in keep]

    def restore(self, state: list[list]) -> None:
        """Continue from :meth:`state`."""
        for track, code, start, last in state:
            self._since[(int(track), str(code))] = (float(start), float(last))

    def _holds(self, rule: Rule, values: dict[str, Any], track: int | None, t: float | None) -> bool:
        if not rule.test(values):
            self._since.pop((track, rule.code), None)
            return False
        if t is None or rule.min_duration <= 0:
            return True
        start, last = self._since.get((track, rule.code), (t, t))
        if t - last > self.max_gap:
            start = t
        self._since[(track, rule.code)] = (start, t)
        return t - start >= rule.min_duration

    def update(self, signals: FaceSignals, track: int | None = None, t: float | None = None) -> tuple[list[str], bool]:
        """``(codes of the rules that fire, speech_action)`` for one face at time ``t`` (None for stills)."""
        cache: dict[float, dict[str, Any]] = {}

        def values(threshold: float) -> dict[str, Any]:
            if threshold not in cache:
                cache[threshold] = signal_map(signals, threshold)
            return cache[threshold]

        fired = [r.code for r in self.rules.rules if self._holds(r, values(r.threshold), track, t)]
        sa = self.rules.speech_action
        return fired, self._holds(sa, values(sa.threshold), track, t)
