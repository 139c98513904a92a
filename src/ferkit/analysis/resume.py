"""``--resume``: the records an output already holds, checked before the file is touched, keyed by file identity.

A file ferkit did not write (other JSON lines, text, a spreadsheet, binary data, not Parquet) and records of another
model, class list or ``--aus`` setting are refused with one line and left as they are. Resume points are matched to
this run's sources by device and inode, so another spelling of a file (``sub/../v.mp4``, an absolute path, a link)
continues it instead of analysing it again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ferkit.analysis.checkpoint import Checkpoint, usable
from ferkit.analysis.records import (
    RecordWriter,
    has_au_columns,
    read_records,
    source_name,
    source_path,
    to_record_dicts,
)
from ferkit.errors import InputError
from ferkit.media.files import file_key

_CHOOSE = "remove it or choose another -o"


def _foreign(path: Path, why: str) -> InputError:
    return InputError(f"{source_name(path)}: not a ferkit records file ({why}); {_CHOOSE}")


def _check_record(rec: Any, path: Path, line: int, model: str | None) -> tuple[str, int]:
    """``(source, frame_index)`` of one record read back; ``InputError`` when it is not a record of this run."""
    if not isinstance(rec, dict) or not {"source", "frame_index", "model"} <= rec.keys():
        raise _foreign(path, f"record {line} lacks source, frame_index or model")
    src, idx, name = rec["source"], rec["frame_index"], rec["model"]
    if not (isinstance(src, str) and isinstance(name, str) and type(idx) is int and idx >= 0):
        raise _foreign(path, f"record {line}: source, frame_index or model of the wrong type")
    if model is not None and name != model:
        raise InputError(f"{source_name(path)}: written by model {name!r}, this run uses {model!r}; {_CHOOSE}")
    return src, idx


def _check_aus(path: Path, columns: Iterable[str], with_aus: bool | None) -> None:
    if with_aus is not None and has_au_columns(columns) != with_aus:
        written = "with" if not with_aus else "without"
        raise InputError(f"{source_name(path)}: written {written} --aus; resume it the same way")


def _jsonl_rows(path: Path, lines: list[str], with_aus: bool | None, model: str | None) -> list[tuple[str, int]]:
    recs = []
    for i, line in enumerate(lines, 1):
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            raise _foreign(path, f"line {i} is not JSON") from None
    rows = [_check_record(r, path, i, model) for i, r in enumerate(recs, 1)]
    if recs:
        _check_aus(path, recs[0], with_aus)
    return rows


def _csv_rows(
    path: Path, lines: list[str], with_aus: bool | None, model: str | None, columns: list[str] | None
) -> tuple[list[tuple[str, int]], list[int]]:
    """The rows of a CSV file and, per row, the number of lines up to its end (a quoted field may hold newlines)."""
    reader = csv.reader(line + "\n" for line in lines)
    header = next(reader, [])
    _check_aus(path, header, with_aus)
    if columns is not None and header != columns:
        if {"source", "frame_index", "model"} <= set(header):
            raise InputError(f"{source_name(path)}: written by another model or class list (other columns); {_CHOOSE}")
        raise _foreign(path, "not the columns of ferkit records")
    rows, ends = [], []
    for row in reader:
        if len(row) != len(header):
            if reader.line_num == len(lines):  # the last row, half-written
                break
            raise _foreign(path, f"line {reader.line_num} has {len(row)} columns, the header {len(header)}")
        rec = dict(zip(header, row, strict=True))
        try:
            rec["frame_index"] = int(rec["frame_index"])
        except (KeyError, ValueError):
            raise _foreign(path, f"line {reader.line_num}: frame_index is not an integer") from None
        rows.append(_check_record(rec, path, reader.line_num, model))
        ends.append(reader.line_num)
    return rows, ends


def resume_points(
    path: Path,
    fmt: str | None = None,
    with_aus: bool | None = None,
    model: str | None = None,
    columns: list[str] | None = None,
    checkpoint: Checkpoint | None = None,
) -> tuple[dict[str, int], Checkpoint | None]:
    """For ``--resume``: per source (as the records name it), the last frame index whose records are kept, and the
    checkpoint the last source continues from (None: it starts again).

    The whole file is checked first and refused, untouched, unless it holds this run's records: ``model`` (the
    records' ``model``), ``columns`` (CSV header) and ``with_aus`` (whether this run writes the AU fields). Then a
    half-written last line (the run was killed mid-write) is cut off, and so are the records of the source written
    last after the ``checkpoint`` frame — all of them without a checkpoint of that source: it is analysed again from
    its start, so the resumed records are those of an uninterrupted run.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return {}, None
    fmt = fmt or path.suffix.lstrip(".")
    data = path.read_bytes()
    complete, tail = data.split(b"\n")[:-1], data.rsplit(b"\n", 1)[-1]  # the tail is empty or half-written
    try:
        lines = [line.decode("utf-8") for line in complete]
        tail_text = tail.decode("utf-8", "ignore")
    except UnicodeDecodeError:
        raise _foreign(path, "not UTF-8 text") from None
    if fmt == "csv":
        if not lines and not (columns and ",".join(columns).startswith(tail_text)):
            raise _foreign(path, "no CSV header")
        rows, ends = _csv_rows(path, lines, with_aus, model, columns)
        header = 1
    else:
        if tail_text and not tail_text.startswith("{"):
            raise _foreign(path, "the last line is not JSON")
        rows = _jsonl_rows(path, lines, with_aus, model)
        ends, header = list(range(1, len(rows) + 1)), 0
    cut, applied = len(rows), None
    if rows:
        last = rows[-1][0]
        while cut > 0 and rows[cut - 1][0] == last:
            cut -= 1
        tail_rows = rows[cut:]
        if checkpoint is not None and checkpoint.source == last and (last, checkpoint.frame_index) in tail_rows:
            cut += sum(idx <= checkpoint.frame_index for _, idx in tail_rows)  # records are in frame order
            applied = checkpoint
    keep = ends[cut - 1] if cut > 0 else header
    path.write_bytes(b"".join(line + b"\n" for line in complete[:keep]))
    points: dict[str, int] = {}
    for src, idx in rows[:cut]:
        points[src] = max(points.get(src, -1), idx)
    return points, applied


def _parquet_to_lines(writer: RecordWriter, model: str) -> None:
    """A finished Parquet file back into its line file, so resuming skips what it holds (checked first)."""
    try:
        rows = to_record_dicts(read_records(writer.path, "parquet"))
    except Exception as e:
        raise _foreign(writer.path, f"unreadable as Parquet: {type(e).__name__}") from None
    for i, r in enumerate(rows, 1):
        _check_record(r, writer.path, i, model)
    if rows:
        _check_aus(writer.path, rows[0], writer.au_keys is not None)
    for i, r in enumerate(rows, 1):
        _check_record(r, writer.path, i, model)
    writer.line_path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def by_identity(points: dict[str, int], sources: Iterable[Path]) -> dict[str, int]:
    """Resume points (keyed by the records' ``source``) keyed by this run's spelling (``str(path)``) of each source:
    the same file under another name, or a link to it, continues where its records end."""
    by_file: dict[tuple[int, int], int] = {}
    for name, idx in points.items():
        key = file_key(source_path(name))
        if key is not None:
            by_file[key] = max(by_file.get(key, -1), idx)
    out = {}
    for src in sources:
        key = file_key(src)
        idx = by_file[key] if key in by_file else points.get(source_name(src), -1)
        if idx >= 0:
            out[str(src)] = idx
    return out


def resume_from(
    writer: RecordWriter, model: str, sources: list[Path], checkpoint: Checkpoint | None = None
) -> tuple[dict[str, int], dict[str, dict]]:
    """What ``writer``'s output already holds for ``--resume``, as ``Analyzer.iter_records``' ``start_after`` and
    ``states`` (the state to continue the interrupted video from, when its ``checkpoint`` fits: same file, unchanged;
    else that video starts again)."""
    if writer.fmt == "parquet" and writer.path.is_file() and not writer.line_path.exists():
        _parquet_to_lines(writer, model)
    src = None
    if checkpoint is not None:
        match = by_identity({checkpoint.source: checkpoint.frame_index}, sources)
        src = next((s for s in sources if str(s) in match), None)
        if src is None or not usable(checkpoint, src):
            checkpoint = None
    line_fmt = "jsonl" if writer.fmt == "parquet" else writer.fmt
    columns = writer.columns if writer.fmt == "csv" else None
    points, applied = resume_points(writer.line_path, line_fmt, writer.au_keys is not None, model, columns, checkpoint)
    states = {str(src): applied.state} if applied is not None else {}
    return by_identity(points, sources), states
