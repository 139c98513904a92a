"""``ferkit relabel``: move (or copy) images of a ``<label>/<image>`` dataset between labels by rules kept as data.

Rules (TOML): ``[aliases]`` maps a label to the folder names that become it (``hard_case = ["smile_fake", …]``);
each ``[[rule]]`` moves images ``within`` a label whose present AUs include any of ``any_au`` (and none of
``none_au``) ``to`` another label. AUs come from the dataset's ``labels.csv`` (an ``export``) when it has them,
else from ferkit's AU model run on the image. Every move is logged (``.relabel/<time>.jsonl``) as it is made, and
``--undo LOG`` moves them back. Nothing is overwritten: a name already in the target folder is reported and left.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.faces.aus import AU_KEYS
from ferkit.labels.taxonomy import label_key, read_toml
from ferkit.media.files import atomic_write_text, collect_inputs
from ferkit.models.loading import DEFAULT_MODEL

AU_PRESENT = 0.5
LOG_DIR = ".relabel"


@dataclass
class Rule:
    within: str
    to: str
    any_au: list[str] = field(default_factory=list)
    none_au: list[str] = field(default_factory=list)

    def fires(self, aus: dict[str, float]) -> bool:
        present = {k for k, v in aus.items() if v >= AU_PRESENT}
        return bool(present & set(self.any_au)) and not present & set(self.none_au)


@dataclass
class Rules:
    mode: str = "move"
    aliases: dict[str, str] = field(default_factory=dict)  # folder key -> label
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Move:
    src: str  # relative to the dataset
    dst: str
    why: str
    done: bool = False
    problem: str | None = None


def _names(path: Path, where: str, value: Any, allowed: tuple[str, ...] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputError(f"{path}: {where} must be a list of names")
    if allowed is not None and (bad := sorted(set(value) - set(allowed))):
        raise InputError(f"{path}: {where}: unknown AU names {bad} (e.g. AU01, AU12)")
    return value


def load_rules(path: Path) -> Rules:
    """Read and check a rules file (one-line ``InputError`` for anything malformed)."""
    data = read_toml(Path(path), "relabel rules")
    mode = data.get("mode", "move")
    if mode not in ("move", "copy"):
        raise InputError(f"{path}: mode must be 'move' or 'copy', not {mode!r}")
    aliases: dict[str, str] = {}
    raw = data.get("aliases", {})
    if not isinstance(raw, dict):
        raise InputError(f"{path}: [aliases] must be a table of label = [folder names]")
    for label, folders in raw.items():
        for f in _names(path, f"aliases.{label}", folders):
            aliases[label_key(f)] = label_key(label)
    rules = []
    for i, r in enumerate(data.get("rule", [])):
        if not isinstance(r, dict) or not isinstance(r.get("within"), str) or not isinstance(r.get("to"), str):
            raise InputError(f'{path}: rule {i + 1} needs within = "label" and to = "label"')
        if unknown := set(r) - {"within", "to", "any_au", "none_au"}:
            raise InputError(f"{path}: rule {i + 1} has unknown keys {sorted(unknown)}")
        any_au = _names(path, f"rule {i + 1} any_au", r.get("any_au", []), AU_KEYS)
        if not any_au:
            raise InputError(f"{path}: rule {i + 1} needs any_au (the AUs that move an image)")
        none_au = _names(path, f"rule {i + 1} none_au", r.get("none_au", []), AU_KEYS)
        rules.append(Rule(label_key(r["within"]), label_key(r["to"]), any_au, none_au))
    return Rules(mode, aliases, rules)


def _csv_aus(dataset: Path) -> dict[str, dict[str, float]]:
    path = dataset / "labels.csv"
    if not path.is_file():
        return {}
    out = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("aus") and row.get("file"):
                try:
                    out[row["file"]] = json.loads(row["aus"])
                except ValueError:
                    continue
    return out


def _model_aus(images: list[Path]) -> dict[Path, dict[str, float]]:
    """AU presence of face crops, from the pipeline with ``--aus`` (crops mode: the image is the face)."""
    if not images:
        return {}
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.analysis.setup import make_analyzer

    analyzer = make_analyzer(DEFAULT_MODEL, AnalyzeOptions(crops=True, aus=True))
    return {Path(r.source): r.aus for r in analyzer.iter_records(images) if r.aus}


def plan(dataset: Path | str, rules: Rules) -> list[Move]:
    """Every move the rules make in ``dataset`` (nothing done yet)."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise InputError(f"{dataset}: dataset is not a folder")
    moves: list[Move] = []
    folders = sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        target = rules.aliases.get(label_key(folder.name))
        if target is not None and target != folder.name:
            for img in collect_inputs([folder]):
                rel = img.relative_to(dataset)
                moves.append(Move(str(rel), str(Path(target) / img.name), f"folder {folder.name} -> {target}"))
    known = _csv_aus(dataset)
    for rule in rules.rules:
        folder = dataset / rule.within
        if not folder.is_dir():
            continue
        images = collect_inputs([folder])
        need = [p for p in images if str(p.relative_to(dataset)) not in known]
        computed = _model_aus(need)
        for img in images:
            rel = str(img.relative_to(dataset))
            aus = known.get(rel) or computed.get(img) or {}
            if rule.fires(aus):
                present = "+".join(k for k in rule.any_au if aus.get(k, 0) >= AU_PRESENT)
                moves.append(Move(rel, str(Path(rule.to) / img.name), f"within {rule.within}: {present} -> {rule.to}"))
    return moves


def _update_csv(dataset: Path, moves: list[Move]) -> None:
    """Point the rows of ``labels.csv`` (an export's) at the images' new places and labels."""
    path = dataset / "labels.csv"
    moved = {m.src: m.dst for m in moves if m.done}
    if not moved or not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames or [], list(reader)
    if "file" not in fields or "label" not in fields:
        return
    for row in rows:
        if row["file"] in moved:
            row["file"] = moved[row["file"]]
            row["label"] = Path(row["file"]).parts[0]
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def apply(dataset: Path | str, moves: list[Move], mode: str = "move") -> Path:
    """Make the moves (or copies), logging each as it is done; returns the log (for ``undo``)."""
    dataset = Path(dataset)
    log = dataset / LOG_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
    log.parent.mkdir(exist_ok=True)
    with open(log, "x", encoding="utf-8") as fh:
        for m in moves:
            src, dst = dataset / m.src, dataset / m.dst
            if os.path.lexists(dst):
                m.problem = "target exists"
                continue
            if not src.is_file():
                m.problem = "source gone"
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copy2 if mode == "copy" else os.rename)(src, dst)
            m.done = True
            fh.write(json.dumps({"mode": mode, "src": m.src, "dst": m.dst, "why": m.why}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    if mode == "move":
        _update_csv(dataset, moves)
    return log


def undo(dataset: Path | str, log: Path | str) -> list[Move]:
    """Reverse the moves of ``log`` (last first); a file changed or replaced since is reported and left."""
    dataset, log = Path(dataset), Path(log)
    try:
        entries = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise InputError(f"{log}: not a relabel log ({e})") from None
    out = []
    for e in reversed(entries):
        if not isinstance(e, dict) or not {"mode", "src", "dst"} <= set(e):
            raise InputError(f"{log}: not a relabel log (entry {e!r:.60})")
        m = Move(e["dst"], e["src"], "undo")
        src, dst = (dataset / e["src"]).resolve(), (dataset / e["dst"]).resolve()
        if not (src.is_relative_to(dataset.resolve()) and dst.is_relative_to(dataset.resolve())):
            raise InputError(f"{log}: entry points outside {dataset}")
        if not dst.is_file():
            m.problem = "moved file gone"
        elif e["mode"] == "copy":
            dst.unlink()
            m.done = True
        elif os.path.lexists(src):
            m.problem = "original place taken"
        else:
            os.rename(dst, src)
            m.done = True
        out.append(m)
    _update_csv(dataset, [m for m, e in zip(out, reversed(entries), strict=True) if e["mode"] == "move"])
    return out
