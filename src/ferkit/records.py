"""The analysis record (one per face per sampled frame, or one per frame without a face) and its writers.

Writers append as results arrive, so an interrupted run leaves a valid file: JSONL and CSV line by line; Parquet
is written to a ``.partial.jsonl`` file first and converted when the run finishes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one record."""
    return json.loads(resources.files("ferkit").joinpath("schemas/record.schema.json").read_text())


def _flat(rec: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    row = {k: v for k, v in rec.items() if k not in ("box", "probabilities", "smoothed_probabilities")}
    box = rec["box"] or [None] * 4
    row.update(zip(("box_x", "box_y", "box_w", "box_h"), box, strict=True))
    for key, prefix in (("probabilities", "p_"), ("smoothed_probabilities", "sp_")):
        probs = rec[key] or {}
        row.update({prefix + c: probs.get(c) for c in classes})
    return row


class RecordWriter:
    """Append records to ``path`` in ``fmt``; use as a context manager. ``append=True`` continues a file."""

    def __init__(self, path: Path, fmt: str, classes: list[str], append: bool = False) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.path, self.fmt, self.classes = Path(path), fmt, classes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.line_path = self.path.with_suffix(".partial.jsonl") if fmt == "parquet" else self.path
        fresh = not (append and self.line_path.exists() and self.line_path.stat().st_size > 0)
        self._fh: IO[str] = open(self.line_path, "w" if fresh else "a", newline="")
        self._csv: csv.DictWriter | None = None
        if fmt == "csv":
            fields = list(_flat(_empty_record(), classes))
            self._csv = csv.DictWriter(self._fh, fieldnames=fields)
            if fresh:
                self._csv.writeheader()
        self.count = 0

    def write(self, record: FaceRecord) -> None:
        rec = record.to_dict()
        if self._csv is not None:
            self._csv.writerow(_flat(rec, self.classes))
        else:
            self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        self._fh.close()
        if self.fmt == "parquet":
            frame = read_records(self.line_path)
            frame.to_parquet(self.path, index=False)
            self.line_path.unlink()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:  # keep what was written; a Parquet run leaves its .partial.jsonl
            self._fh.close()


def _empty_record() -> dict[str, Any]:
    return {k: None for k in FaceRecord.__dataclass_fields__}


def read_records(path: Path):
    """Read records written in any format (by suffix) into a DataFrame with the record's columns.

    CSV's flattened ``box_*``, ``p_*`` and ``sp_*`` columns are folded back into ``box`` and the probability dicts.
    """
    import pandas as pd

    path = Path(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix != ".csv":
        return pd.DataFrame(load_jsonl(path), columns=list(FaceRecord.__dataclass_fields__))
    flat = pd.read_csv(path)
    out = flat[[c for c in flat.columns if not c.startswith(("box_", "p_", "sp_"))]].copy()

    def fold(prefix: str) -> list[dict[str, float] | None]:
        cols = [c for c in flat.columns if c.startswith(prefix)]
        return [
            None if row.isna().all() else {c[len(prefix) :]: float(v) for c, v in row.items()}
            for _, row in flat[cols].iterrows()
        ]

    boxes = flat[["box_x", "box_y", "box_w", "box_h"]]
    out["box"] = [None if r.isna().all() else r.tolist() for _, r in boxes.iterrows()]
    out["probabilities"], out["smoothed_probabilities"] = fold("p_"), fold("sp_")
    return out[list(FaceRecord.__dataclass_fields__)]


def resume_points(path: Path) -> dict[str, int]:
    """For ``--resume``: the last frame index written per source in a line-based output file.

    A half-written last line (the run was killed mid-write) is cut off so appending continues a valid file.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return {}
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])
    frame = read_records(path)
    if frame.empty:
        return {}
    return {str(k): int(v) for k, v in frame.groupby("source")["frame_index"].max().items()}


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file as dicts; a half-written last line (interrupted run) is ignored."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out
