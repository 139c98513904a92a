"""The analysis record (one per face per sampled frame, or one per frame without a face) and its writers.

Writers append as results arrive, so an interrupted run leaves a valid file: JSONL and CSV line by line; Parquet
is written to a ``.partial.jsonl`` file first and converted when the run finishes.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

from ferkit.errors import InputError

#: Emotion → valence. Surprise has no settled valence (pleasant or not), so it maps to neutral like "neutral".
SENTIMENT: dict[str, str] = {
    "happy": "positive",
    "surprise": "neutral",
    "neutral": "neutral",
    "angry": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sad": "negative",
    "contempt": "negative",
}

FORMATS = ("jsonl", "csv", "parquet")


def source_name(path: str | Path) -> str:
    """``path`` as a record's ``source``: always valid UTF-8 (undecodable bytes of a file name written ``\\xNN``),
    so JSONL, CSV and Parquet hold the same text."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def source_path(name: str) -> Path:
    """The file a record's ``source`` names (the inverse of :func:`source_name`)."""
    if "\\x" not in name:
        return Path(name)
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), name.encode("utf-8", "surrogateescape"))
    return Path(os.fsdecode(raw))


@dataclass
class FaceRecord:
    """One row of ``ferkit analyze`` output (see ``schemas/record.schema.json``)."""

    source: str
    frame_index: int
    timestamp: float | None
    face_id: int | None
    box: list[float] | None
    detection_score: float | None
    alignment: str | None  # "keypoints", "box" (no keypoints from the detector) or "crop" (--crops)
    model: str
    emotion: str | None
    confidence: float | None
    sentiment: str | None
    probabilities: dict[str, float] | None
    smoothed_emotion: str | None
    smoothed_probabilities: dict[str, float] | None
    # Several models / fusion / gate (None in a plain single-model run; see the schema for each field):
    models: dict[str, dict[str, Any]] | None = None  # model name -> {"emotion", "confidence", "probabilities"}
    fusion: dict[str, Any] | None = None  # {"strategy", "models"} when the models' outputs were fused
    gate: dict[str, Any] | None = None  # {"model", "class", "score", "threshold"} when a gate model ran
    gated: bool | None = None  # True: the gate withheld this face's emotion (probabilities kept)
    # Action units, speech and hard cases (``--aus`` only; absent from the output of runs without it):
    aus: dict[str, float] | None = None  # AU key -> presence probability (>= 0.5: present)
    au_intensity: dict[str, float] | None = None  # AU key -> 0-1 intensity (uncalibrated)
    speaking: float | None = None  # visual speech probability (video; null for stills and the first ~0.3 s)
    speech_action: bool | None = None  # speaking with an emotional upper face (rules file, [speech_action])
    hard_case_rules: list[str] | None = None  # reason codes of the hard-case rules that fire
    aus_reason: str | None = None  # why ``aus`` is null on a face record (e.g. the landmarker did not fit)
    with_aus: bool = field(default=False, repr=False, compare=False)  # an --aus run: write the AU fields

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (nested values are shared, not copied: ``asdict``'s deep copy cost 10% of
        video analysis time); the AU fields only in ``--aus`` runs."""
        return {name: getattr(self, name) for name in (AU_RECORD_FIELDS if self.with_aus else BASE_FIELDS)}

    @classmethod
    def no_face(
        cls, source: str, frame_index: int, timestamp: float | None, model: str, with_aus: bool = False
    ) -> FaceRecord:
        """The record of a frame in which no face was found."""
        empty = dict.fromkeys(BASE_FIELDS)
        return cls(
            **{**empty, "source": source, "frame_index": frame_index, "timestamp": timestamp, "model": model},
            with_aus=with_aus,
        )


#: The fields every run writes, and the ones an ``--aus`` run adds (in that order).
AU_FIELDS = ("aus", "au_intensity", "speaking", "speech_action", "hard_case_rules", "aus_reason")
BASE_FIELDS = tuple(f for f in FaceRecord.__dataclass_fields__ if f not in (*AU_FIELDS, "with_aus"))
AU_RECORD_FIELDS = (*BASE_FIELDS, *AU_FIELDS)
#: The fields ``analyze --live`` adds after those (not in :class:`FaceRecord`: the writer adds them at write time).
LIVE_FIELDS = ("latency_ms", "dropped")


def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record."""
    return json.loads(resources.files("ferkit").joinpath("assets/schemas/record.schema.json").read_text())


#: Nested fields that CSV holds as JSON text in one column (empty when null).
JSON_COLUMNS = ("models", "fusion", "gate", "hard_case_rules")
#: Column prefixes of the flattened AU dicts in CSV and Parquet (``au_AU12``, ``au_intensity_AU12``).
AU_PREFIX, AU_INTENSITY_PREFIX = "au_", "au_intensity_"


def _flat(rec: dict[str, Any], classes: list[str], au_keys: list[str] | None = None) -> dict[str, Any]:
    drop = ("box", "probabilities", "smoothed_probabilities", "aus", "au_intensity")
    row = {k: v for k, v in rec.items() if k not in drop}
    for key in JSON_COLUMNS:
        if key in rec:
            row[key] = None if rec.get(key) is None else json.dumps(rec[key], separators=(",", ":"))
    box = rec["box"] or [None] * 4
    row.update(zip(("box_x", "box_y", "box_w", "box_h"), box, strict=True))
    for key, prefix in (("probabilities", "p_"), ("smoothed_probabilities", "sp_")):
        probs = rec[key] or {}
        row.update({prefix + c: probs.get(c) for c in classes})
    if au_keys is not None:
        for key, prefix in (("aus", AU_PREFIX), ("au_intensity", AU_INTENSITY_PREFIX)):
            values = rec.get(key) or {}
            row.update({prefix + k: values.get(k) for k in au_keys})
    return row


def _fold(flat, prefix: str, exclude: str | None = None) -> list[dict[str, float] | None]:
    """The ``<prefix><key>`` columns of a flat CSV/Parquet frame as one dict per row (None where all are empty);
    columns starting with ``exclude`` (a longer prefix sharing this one) are left out."""
    cols = [c for c in flat.columns if c.startswith(prefix) and not (exclude and c.startswith(exclude))]
    return [
        None if row.isna().all() else {c[len(prefix) :]: float(v) for c, v in row.items()}
        for _, row in flat[cols].iterrows()
    ]


def _fold_aus(flat, out) -> None:
    """CSV/Parquet ``au_*`` columns back into the ``aus`` and ``au_intensity`` dicts (in place on ``out``)."""
    out["aus"] = _fold(flat, AU_PREFIX, exclude=AU_INTENSITY_PREFIX)
    out["au_intensity"] = _fold(flat, AU_INTENSITY_PREFIX)


def has_au_columns(columns) -> bool:
    """True when a CSV/Parquet/JSONL column set comes from an ``--aus`` run."""
    return any(str(c) == "aus" or str(c).startswith(AU_PREFIX) for c in columns)


class RecordWriter:
    """Append records to ``path`` in ``fmt``; use as a context manager. ``append=True`` continues a file.

    The file is opened at the first record (or at close), so a run that fails before producing anything leaves an
    existing file untouched.
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        classes: list[str],
        append: bool = False,
        au_keys: list[str] | None = None,
        live: bool = False,
    ) -> None:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.path, self.fmt, self.classes, self.append = Path(path), fmt, classes, append
        self.au_keys = au_keys  # an --aus run: AU columns (CSV/Parquet) in this order
        self.live = live  # an --live run: every record also has the LIVE_FIELDS (given to write())
        self.line_path = self.path.with_suffix(".partial.jsonl") if fmt == "parquet" else self.path
        self._fh: IO[str] | None = None
        self._csv: csv.DictWriter | None = None
        self.count = 0

    @property
    def columns(self) -> list[str]:
        """The CSV columns of this writer's records (header line)."""
        columns = list(_flat(_empty_record(self.au_keys is not None), self.classes, self.au_keys))
        return [*columns, *LIVE_FIELDS] if self.live else columns

    def _open(self) -> IO[str]:
        fresh = not (self.append and self.line_path.exists() and self.line_path.stat().st_size > 0)
        try:
            self.line_path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.line_path, "w" if fresh else "a", newline="")
        except OSError as e:
            raise InputError(f"{self.line_path}: cannot write output ({e.strerror or e})") from e
        if self.fmt == "csv":
            self._csv = csv.DictWriter(fh, fieldnames=self.columns)
            if fresh:
                self._csv.writeheader()
        return fh

    def write(self, record: FaceRecord, extra: dict[str, Any] | None = None) -> None:
        """Append ``record`` (plus ``extra``: the :data:`LIVE_FIELDS` of a live run) and flush it."""
        if self._fh is None:
            self._fh = self._open()
        rec = record.to_dict() if extra is None else {**record.to_dict(), **extra}
        if self._csv is not None:
            self._csv.writerow(_flat(rec, self.classes, self.au_keys))
        else:
            self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is None:
            self._fh = self._open()
        self._fh.close()
        if self.fmt == "parquet":
            frame = read_records(self.line_path, "jsonl")
            if self.au_keys is not None:
                frame = _flatten_aus(frame, self.au_keys)
            frame.to_parquet(self.path, index=False)
            self.line_path.unlink()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is None:
            self.close()
        elif self._fh is not None:  # keep what was written; a Parquet run leaves its .partial.jsonl
            self._fh.close()


def _empty_record(with_aus: bool = False) -> dict[str, Any]:
    return dict.fromkeys(AU_RECORD_FIELDS if with_aus else BASE_FIELDS)


def _flatten_aus(frame, au_keys: list[str]):
    """The ``aus``/``au_intensity`` dict columns of a record frame as ``au_*`` columns (for Parquet)."""
    import pandas as pd

    cols = {}
    for key, prefix in (("aus", AU_PREFIX), ("au_intensity", AU_INTENSITY_PREFIX)):
        values = [v if isinstance(v, dict) else {} for v in frame[key]]
        for k in au_keys:
            cols[prefix + k] = pd.array([v.get(k) for v in values], dtype="Float64")
    return pd.concat([frame.drop(columns=["aus", "au_intensity"]), pd.DataFrame(cols, index=frame.index)], axis=1)


def read_records(path: Path, fmt: str | None = None):
    """Read records written in ``fmt`` (default: by suffix) into a DataFrame with the record's columns.

    CSV's flattened ``box_*``, ``p_*`` and ``sp_*`` columns are folded back into ``box`` and the probability dicts,
    its JSON text columns (``models``, ``fusion``, ``gate``, ``hard_case_rules``) parsed back, and the ``au_*``
    columns of CSV and Parquet folded into ``aus``/``au_intensity``. The AU fields are columns only when the file
    has them (an ``--aus`` run). Files written before a column existed read with that column null.
    """
    import pandas as pd

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    if fmt == "parquet":
        flat = pd.read_parquet(path)
        if not has_au_columns(flat.columns):
            return flat.reindex(columns=list(BASE_FIELDS))
        out = flat[[c for c in flat.columns if not c.startswith(AU_PREFIX)]].copy()
        _fold_aus(flat, out)
        return out.reindex(columns=list(AU_RECORD_FIELDS))
    if fmt != "csv":
        rows = load_jsonl(path)
        fields = AU_RECORD_FIELDS if rows and has_au_columns(rows[0]) else BASE_FIELDS
        return pd.DataFrame(rows, columns=_with_live(fields, rows[0] if rows else ()))
    flat = pd.read_csv(path, dtype={k: object for k in (*JSON_COLUMNS, "gated", "speech_action")})
    aus = has_au_columns(flat.columns)
    out = flat[[c for c in flat.columns if not c.startswith(("box_", "p_", "sp_", AU_PREFIX))]].copy()
    for key in JSON_COLUMNS:
        if key in flat.columns or key != "hard_case_rules":
            out[key] = [json.loads(v) if isinstance(v, str) else None for v in out.get(key, [None] * len(out))]
    for key in ("gated", "speech_action"):
        if key in flat.columns or key == "gated":
            out[key] = [{"True": True, "False": False}.get(v) for v in out.get(key, [None] * len(out))]

    boxes = flat[["box_x", "box_y", "box_w", "box_h"]]
    out["box"] = [None if r.isna().all() else r.tolist() for _, r in boxes.iterrows()]
    out["probabilities"], out["smoothed_probabilities"] = _fold(flat, "p_"), _fold(flat, "sp_")
    if aus:
        _fold_aus(flat, out)
    return out.reindex(columns=_with_live(AU_RECORD_FIELDS if aus else BASE_FIELDS, flat.columns))


def _with_live(fields: tuple[str, ...], columns) -> list[str]:
    """``fields``, plus the :data:`LIVE_FIELDS` when ``columns`` (a file's columns or first record) has them."""
    return [*fields, *LIVE_FIELDS] if LIVE_FIELDS[0] in columns else list(fields)


def _plain(v: Any) -> Any:
    """A value from a DataFrame cell as plain JSON data (arrays → lists, NaN → None, nested dicts too)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v != v:  # NaN
        return None
    return v


def to_record_dicts(frame) -> list[dict[str, Any]]:
    """DataFrame rows as plain record dicts (NaN → None, integral columns as int, arrays as lists)."""
    out = []
    for row in frame.to_dict("records"):
        rec = {k: _plain(v) for k, v in row.items()}
        for k in ("frame_index", "face_id"):
            if rec.get(k) is not None:
                rec[k] = int(rec[k])
        for k in ("gated", "speech_action"):
            if rec.get(k) is not None:
                rec[k] = bool(rec[k])
        out.append(rec)
    return out


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file as dicts; a half-written last line (interrupted run) is ignored."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out
