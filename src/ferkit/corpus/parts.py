"""The Parquet parts of a corpus run: one flat file per video under ``<run>/records/`` with a fixed schema (see
docs/corpus.md), stamped with the key of the settings and content it was made from; a long video's segments have
parts of their own in the work folder until :func:`merge_segments` makes the video's part from them.

Columns: the manifest's (``video_id``, ``title``, ``path`` and its extra columns), ``duration_s``, then one row per
face per sampled frame (or per frame without a face): ``frame_index``, ``timestamp``, ``time_pct`` (0–100 % of the
runtime), ``face_id``, ``box_x/y/w/h``, ``detection_score``, ``alignment``, ``model``, ``emotion``, ``confidence``,
``sentiment``, ``p_<class>``, ``smoothed_emotion``, ``sp_<class>`` and ``models`` (JSON text of each model's
emotion, confidence and probabilities when the run has several models; null otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferkit.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ferkit.corpus.jobs import VideoJob

META_KEY = b"ferkit_corpus"
RECORDS = "records"
_FLOAT = ("timestamp", "time_pct", "box_x", "box_y", "box_w", "box_h", "detection_score", "confidence")
_TEXT = ("alignment", "model", "emotion", "sentiment", "smoothed_emotion")


def part_schema(classes: list[str], column_types: dict[str, str]) -> pa.Schema:
    """The Arrow schema of every part of a run with these classes and manifest column types."""
    import pyarrow as pa

    fields = [("video_id", pa.string()), ("title", pa.string()), ("path", pa.string())]
    fields += [(c, getattr(pa, t)()) for c, t in column_types.items()]
    fields += [("duration_s", pa.float64()), ("frame_index", pa.int64()), ("timestamp", pa.float64())]
    fields += [("time_pct", pa.float64()), ("face_id", pa.int64())]
    fields += [(c, pa.float64()) for c in ("box_x", "box_y", "box_w", "box_h", "detection_score")]
    fields += [(c, pa.string()) for c in ("alignment", "model", "emotion")]
    fields += [("confidence", pa.float64()), ("sentiment", pa.string())]
    fields += [(f"p_{c}", pa.float64()) for c in classes]
    fields += [("smoothed_emotion", pa.string())] + [(f"sp_{c}", pa.float64()) for c in classes]
    fields += [("models", pa.string())]
    return pa.schema(fields)


def arrow_type(values: list[Any]) -> str:
    """The Arrow type name of a manifest column: int64 or float64 when every value is a number, else string."""
    present = [v for v in values if v is not None and v != ""]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64"
    return "string"


def _cell(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    return str(value) if kind == "string" else value


def _flat(rows: list[dict[str, Any]], job: VideoJob, classes: list[str], duration: float | None) -> dict[str, list]:
    """The part's columns from the records (as JSON reads them back: ``ferkit analyze`` JSONL lines)."""
    n = len(rows)

    def records(key: str) -> list[Any]:
        return [r.get(key) for r in rows]

    v = job.video
    cols: dict[str, list] = {"video_id": [v.video_id] * n, "title": [v.title] * n, "path": [v.path] * n}
    for c, kind in job.column_types.items():
        cols[c] = [_cell(v.columns.get(c), kind)] * n
    ts = [None if t is None or t != t else float(t) for t in records("timestamp")]
    span = duration if duration else max((t for t in ts if t is not None), default=0.0) or None
    cols["duration_s"] = [duration] * n
    cols["frame_index"] = [int(i) for i in records("frame_index")]
    cols["timestamp"] = ts
    cols["time_pct"] = [None if t is None or not span else min(100.0, 100.0 * t / span) for t in ts]
    cols["face_id"] = [None if f is None or f != f else int(f) for f in records("face_id")]
    boxes = [b if isinstance(b, list) and len(b) == 4 else [None] * 4 for b in records("box")]
    for i, c in enumerate(("box_x", "box_y", "box_w", "box_h")):
        cols[c] = [b[i] for b in boxes]
    for c in ("detection_score", "alignment", "model", "emotion", "confidence", "sentiment", "smoothed_emotion"):
        cols[c] = [None if x is None or (isinstance(x, float) and x != x) else x for x in records(c)]
    for key, prefix in (("probabilities", "p_"), ("smoothed_probabilities", "sp_")):
        dicts = [d if isinstance(d, dict) else {} for d in records(key)]
        for c in classes:
            cols[prefix + c] = [d.get(c) for d in dicts]
    cols["models"] = [
        None if not isinstance(m, dict) else json.dumps(m, separators=(",", ":")) for m in records("models")
    ]
    return cols


def write_part(
    job: VideoJob, model_names: list[str], classes: list[str], rows: list[dict[str, Any]]
) -> tuple[int, int]:
    """The records ``rows`` (dicts as JSON reads back ``ferkit analyze`` JSONL lines) as the job's Parquet part,
    written atomically and stamped with the job's key (and its segment); returns ``(rows, face rows)``."""
    import pyarrow as pa

    table = pa.table(_flat(rows, job, classes, job.duration), schema=part_schema(classes, job.column_types))
    meta = _stamp(job, model_names, classes, table)
    if job.segment is not None:
        s = job.segment
        meta["segment"] = {"number": s.number, "count": s.count, "start": s.start, "stop": s.stop}
    _save(table, meta, job.part)
    return meta["rows"], meta["faces"]


def _stamp(job: VideoJob, model_names: list[str], classes: list[str], table: pa.Table) -> dict[str, Any]:
    """The Parquet metadata of a part (see docs/corpus.md)."""
    return {
        "key": job.key,
        "row": row_stamp(job),
        "content_sha256": job.content_sha256,
        "video_id": job.video.video_id,
        "models": model_names,
        "classes": classes,
        "sampling": job.spec.sampling(),
        "rows": table.num_rows,
        "faces": table.num_rows - table.column("face_id").null_count,
    }


def merge_segments(job: VideoJob, segments: list[VideoJob]) -> tuple[int, int]:
    """The finished parts of a long video's ``segments`` (in order) as the video's part, stamped with its key;
    returns ``(rows, face rows)``. Each segment's face tracks start afresh, so its face ids are shifted past those
    of the segments before it: ids stay unique within the video."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(s.part) for s in segments]
    first = json.loads(tables[0].schema.metadata[META_KEY])
    ids: list[int | None] = []
    offset = 0
    for t in tables:
        local = t.column("face_id").to_pylist()
        ids += [None if f is None else f + offset for f in local]
        offset += max((f + 1 for f in local if f is not None), default=0)
    records = pa.concat_tables([t.select(_record_columns(t)).replace_schema_metadata(None) for t in tables])
    records = records.set_column(records.column_names.index("face_id"), "face_id", pa.array(ids, pa.int64()))
    table = _with_manifest(records, job, first["classes"])
    meta = _stamp(job, first["models"], first["classes"], table) | {"segments": len(segments)}
    _save(table, meta, job.part)
    return meta["rows"], meta["faces"]


def row_stamp(job: VideoJob) -> str:
    """A hash of the manifest row as a part stores it (title, path, extra columns and their types)."""
    import hashlib

    v = job.video
    return hashlib.sha256(json.dumps([v.title, v.path, v.columns, job.column_types]).encode()).hexdigest()


def _with_manifest(table: pa.Table, job: VideoJob, classes: list[str]) -> pa.Table:
    """``table``'s record columns with the manifest columns of ``job``'s current row."""
    import pyarrow as pa

    n, v = table.num_rows, job.video
    manifest = {"video_id": [v.video_id] * n, "title": [v.title] * n, "path": [v.path] * n}
    manifest |= {c: [_cell(v.columns.get(c), kind)] * n for c, kind in job.column_types.items()}
    rest = {c: table.column(c) for c in _record_columns(table)}
    return pa.table({**manifest, **rest}, schema=part_schema(classes, job.column_types))


def relabel_part(job: VideoJob) -> None:
    """Rewrite the manifest columns of a finished part whose manifest row changed (no analysis: same key)."""
    import pyarrow.parquet as pq

    table = pq.read_table(job.part)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["row"] = row_stamp(job)
    _save(_with_manifest(table, job, meta["classes"]), meta, job.part)


def _save(table: pa.Table, meta: dict[str, Any], path: Path) -> None:
    """``table`` stamped with ``meta``, written to ``path`` all or nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ferkit.media.files import atomic_write_bytes

    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _record_columns(table: pa.Table) -> list[str]:
    """The columns of a part from ``duration_s`` on (everything but the manifest's)."""
    names = table.column_names
    return names[names.index("duration_s") :]


def part_meta(path: Path) -> dict[str, Any] | None:
    """The stamp of a finished part, or None when the file is missing, unreadable or not a corpus part."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
        doc = json.loads(meta[META_KEY])
    except Exception:  # a part cut by a crash, or any file that is not one: it is made again
        return None
    return doc if isinstance(doc, dict) else None


def part_files(run: Path) -> list[Path]:
    """The finished parts of a run folder (``InputError`` when it has none)."""
    folder = Path(run) / RECORDS
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{run}: no corpus records (expected {folder}/*.parquet from 'ferkit corpus run')")
    return files


def load_parts(run: Path) -> pd.DataFrame:
    """Every part of a run as one DataFrame (``InputError`` naming a part that cannot be read)."""
    import pandas as pd

    frames = []
    for f in part_files(run):
        try:
            frames.append(pd.read_parquet(f))
        except Exception as e:
            raise InputError(
                f"{f}: corrupt or unreadable Parquet part ({type(e).__name__}); delete it and rerun"
            ) from None
    return pd.concat(frames, ignore_index=True)
