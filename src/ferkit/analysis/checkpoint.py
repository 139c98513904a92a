"""Exact resume: ``<output>.state.json`` beside the records of an analysis run.

The file holds the run's settings (model weights and calibration, fps, detector, tracking, smoothing, test-time
augmentation, AU options) and, every few seconds of work, a checkpoint of the video being analysed: the last frame
whose records are all written and the running state after it (face tracks, smoother, AU baselines, speech windows,
rule clocks) as plain JSON values. ``--resume`` refuses other settings, cuts the records after the checkpoint frame
and continues from the restored state, so the resumed records are those of an uninterrupted run. Without a usable
checkpoint (none yet, another source, the input changed, a damaged file) the interrupted video is analysed again
from its start: slower, still exact. Written atomically; kept after the run, so a finished output resumes to itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferkit.analysis.records import source_name
from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, read_json_file, source_identity

if TYPE_CHECKING:
    from ferkit.analysis.pipeline import Analyzer

VERSION = 1
MAX_STATE_BYTES = 64 << 20

#: The option a user changes to change each setting (named in the refusal).
_OPTIONS = {
    "model": "--model",
    "weights": "--model",
    "classes": "--model",
    "calibration": "--calibration/--no-calibration",
    "gate": "--gate/--gate-class/--gate-threshold",
    "tta": "--tta",
    "fps": "--fps",
    "every": "--every",
    "crops": "--crops",
    "detector": "--detector",
    "detect_interval": "--detect-interval",
    "template": "the alignment template",
    "smoothing": "the smoothing (tau, margin, k)",
    "aus": "--aus",
    "au_baseline": "the AU baseline",
    "au_fps": "--au-fps",
    "rules": "--rules",
}


def state_path(output: Path) -> Path:
    """The state file of ``output``."""
    return output.with_name(output.name + ".state.json")


def _calibration(model: Any) -> list | None:
    cal = getattr(model, "calibration", None)
    return None if cal is None else [list(map(float, cal.bias)), float(cal.temperature)]


def run_settings(analyzer: Analyzer) -> dict[str, Any]:
    """Everything a record depends on besides the input: a resumed run must match it."""
    o = analyzer.options
    gate = analyzer.ensemble.gate
    rules = None
    if analyzer.rules is not None:
        rules = hashlib.sha256(Path(analyzer.rules.path).read_bytes()).hexdigest()
    return {
        "model": analyzer.name,
        "weights": [m.sha256 for m in analyzer.ensemble.models],
        "classes": list(analyzer.classes),
        "calibration": [_calibration(m) for m in analyzer.ensemble.models],
        "gate": None if gate is None else [gate.sha256, analyzer.gate_class, analyzer.gate_threshold],
        "tta": analyzer.tta if analyzer.tta is not None else [m.tta for m in analyzer.ensemble.models],
        "fps": o.fps,
        "every": o.every,
        "crops": o.crops,
        "detector": o.detector,
        "detect_interval": o.detect_interval,
        "template": o.template,
        "smoothing": [o.tau, o.margin, o.k],
        "aus": o.aus,
        "au_baseline": o.au_baseline,
        "au_fps": o.au_fps,
        "rules": rules,
    }


@dataclass
class Checkpoint:
    """The state after frame ``frame_index`` of ``source`` (the records' name), all of whose records are written."""

    source: str
    frame_index: int
    state: dict[str, Any]
    identity: dict[str, Any]  # size and mtime of the input then: a changed file is analysed again from its start


class StateFile:
    """The state file of one output: :meth:`check` before resuming, :meth:`start` and :meth:`save` while writing."""

    def __init__(self, output: Path, settings: dict[str, Any]) -> None:
        self.output, self.path, self.settings = Path(output), state_path(Path(output)), settings

    def check(self) -> Checkpoint | None:
        """For ``--resume``: ``InputError`` when the output was written with other settings; the checkpoint to
        continue from, or None (no state file: an output of an older ferkit, or none written yet)."""
        if not self.path.exists():
            return None
        doc = read_json_file(self.path, "ferkit analysis state", MAX_STATE_BYTES)
        if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("settings"), dict):
            raise InputError(f"{self.path}: not a ferkit analysis state file; remove it to resume without it")
        written = doc["settings"]
        for key, value in self.settings.items():
            if _canonical(written.get(key)) != _canonical(value):
                raise InputError(
                    f"{source_name(self.output)}: written with {_OPTIONS.get(key, key)} = {_short(written.get(key))}, "
                    f"this run has {_short(value)}; resume with the same settings"
                )
        return _checkpoint(doc.get("checkpoint"))

    def start(self, checkpoint: Checkpoint | None = None) -> None:
        """Write the settings (and the checkpoint resumed from, if any) before the first record."""
        self._write(checkpoint)

    def save(self, source: Path, frame_index: int, state: dict[str, Any]) -> None:
        """A checkpoint after ``frame_index`` of ``source`` (the pipeline calls it every few seconds of work)."""
        self._write(Checkpoint(source_name(source), frame_index, state, _identity(source)))

    def _write(self, cp: Checkpoint | None) -> None:
        doc: dict[str, Any] = {"version": VERSION, "settings": self.settings, "checkpoint": None}
        if cp is not None:
            doc["checkpoint"] = {"source": cp.source, "frame_index": cp.frame_index, "identity": cp.identity}
            doc["checkpoint"]["state"] = cp.state
        atomic_write_text(self.path, json.dumps(doc, allow_nan=False))


def _identity(path: Path) -> dict[str, Any]:
    ident = source_identity(path)
    return {"size": ident["size"], "mtime_ns": ident["mtime_ns"]}


def _canonical(v: Any) -> Any:
    """Settings compared as JSON reads them back (tuples are lists, ints and floats equal)."""
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    return v


def _short(v: Any) -> str:
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _checkpoint(cp: Any) -> Checkpoint | None:
    """The checkpoint of a state file, or None when there is none or it is malformed (the video is then analysed
    again from its start: a damaged checkpoint costs time, never records)."""
    if not isinstance(cp, dict):
        return None
    src, idx, state, ident = cp.get("source"), cp.get("frame_index"), cp.get("state"), cp.get("identity")
    if not (isinstance(src, str) and type(idx) is int and idx >= 0 and isinstance(state, dict)):
        return None
    return Checkpoint(src, idx, state, ident) if isinstance(ident, dict) else None


def usable(cp: Checkpoint, path: Path) -> bool:
    """Whether the input at ``path`` is unchanged since the checkpoint was taken."""
    try:
        return _identity(path) == cp.identity
    except OSError:
        return False
