"""Time-stamped channels (face, voice, text …): read, align by time and fuse with flicker suppression.

A channel is a DataFrame with ``timestamp`` (seconds) and ``label`` and/or ``probabilities``
(``{class: p}``) and optionally ``confidence`` (default 1.0). A row's vector is its ``probabilities`` when present,
else the one-hot of its ``label`` scaled by its confidence. ``sync_windows`` / ``sync_nearest`` align channels in
time, and ``fuse_channels`` votes per aligned row and smooths the result with a hysteresis state machine.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ferkit.analysis.channel_checks import (
    check_channel_row,
    check_face_record,
    check_fuse_options,
    check_span,
    read_lines,
)
from ferkit.errors import InputError
from ferkit.models.fusion import Vector, union_classes


def _vector(row: pd.Series) -> Vector | None:
    """A channel row's class vector: its probabilities, else its label one-hot scaled by its confidence."""
    probs = row.get("probabilities")
    if isinstance(probs, dict):
        return {str(k): float(v) for k, v in probs.items()}
    label = row.get("label")
    if isinstance(label, str) and label:
        conf = row.get("confidence")
        return {label: 1.0 if conf is None or pd.isna(conf) else float(conf)}
    return None


def _mean(vectors: list[Vector]) -> Vector:
    """Element-wise mean over the union of keys (a missing key counts as 0)."""
    keys = union_classes([list(v) for v in vectors])
    return {k: sum(v.get(k, 0.0) for v in vectors) / len(vectors) for k in keys}


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows as a DataFrame; non-numeric columns stay object dtype so missing values read None (not NaN)."""

    def numeric(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    data = {}
    for c in columns:
        vals = [r.get(c) for r in rows]
        data[c] = pd.Series(vals, dtype=float if all(numeric(v) for v in vals) else object)
    return pd.DataFrame(data, columns=columns)


def face_channel(records: list[dict], face: str | int = "largest") -> pd.DataFrame:
    """ferkit records as a channel: per timestamp the largest face (by box area) or the face with id ``face``.

    Records with ``face_id`` None (no face tracked), faces a gate model withheld (``gated``), and records with
    neither emotion nor probabilities are dropped.
    """
    for i, r in enumerate(records, start=1):
        check_face_record(r, f"face record {i}")
    if any(r.get("timestamp") is None for r in records):
        raise InputError("still images have no timestamps; face_channel needs video records")
    best: dict[float, tuple[float, dict]] = {}
    for r in records:
        if (
            r.get("face_id") is None
            or r.get("gated") is True
            or (r.get("emotion") is None and not r.get("probabilities"))
        ):
            continue
        if face != "largest" and r["face_id"] != face:
            continue
        t = float(r["timestamp"])
        area = float(r["box"][2]) * float(r["box"][3])
        if t not in best or area > best[t][0]:
            best[t] = (area, r)
    rows = [
        {"timestamp": t, "label": r.get("emotion"), "probabilities": r.get("probabilities"), "confidence": 1.0}
        for t, (_, r) in sorted(best.items())
    ]
    return _frame(rows, ["timestamp", "label", "probabilities", "confidence"])


def read_channel(path: str | Path) -> pd.DataFrame:
    """Load a channel from JSONL or CSV (``probabilities`` as a JSON object string in CSV).

    Rows are sorted by timestamp. Duplicate timestamps collapse to one row: when every duplicate has probabilities
    they are averaged (and their confidences), otherwise the row with the highest confidence is kept (first on ties).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"channel file not found: {path}")
    raw = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    if raw and all(isinstance(r, dict) and "timestamp" not in r for r in raw):
        raise InputError(f"{path}: missing field 'timestamp'")
    if raw and all(isinstance(r, dict) and "label" not in r and "probabilities" not in r for r in raw):
        raise InputError(f"{path}: missing field 'label' or 'probabilities'")
    for i, row in enumerate(raw, start=1):
        check_channel_row(row, f"{path}: row {i}")
    if not raw:
        raise InputError(f"{path}: no samples")
    df = pd.DataFrame(raw)
    if "label" not in df.columns:
        df["label"] = None
    if "probabilities" not in df.columns:
        df["probabilities"] = None
    df["confidence"] = (
        pd.to_numeric(df["confidence"], errors="coerce").fillna(1.0) if "confidence" in df.columns else 1.0
    )
    df["timestamp"] = df["timestamp"].astype(float)
    rows = []
    for t, g in df.sort_values("timestamp", kind="stable").groupby("timestamp", sort=True):
        if len(g) > 1 and "probabilities" in g and all(isinstance(p, dict) for p in g["probabilities"]):
            label, probs, conf = None, _mean(list(g["probabilities"])), float(g["confidence"].mean())
        else:
            r = g.loc[g["confidence"].idxmax()]
            label, probs, conf = r.get("label"), r.get("probabilities"), float(r["confidence"])
        label, probs = (label if isinstance(label, str) else None), (probs if isinstance(probs, dict) else None)
        rows.append({"timestamp": float(t), "label": label, "probabilities": probs, "confidence": conf})
    return _frame(rows, ["timestamp", "label", "probabilities", "confidence"])


def _jsonl_rows(path: Path) -> list[dict]:
    rows = []
    for i, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}: line {i} is not JSON ({str(e)[:80]})") from None
        if not isinstance(rows[-1], dict):
            raise InputError(f"{path}: line {i} is not a JSON object")
    return rows


def _csv_rows(path: Path) -> list[dict]:
    """CSV rows as dicts: empty cells dropped, numbers parsed, ``probabilities`` parsed from its JSON text."""
    import io

    try:
        df = pd.read_csv(io.StringIO("\n".join(read_lines(path))), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: unreadable CSV ({str(e).splitlines()[0][:120]})") from None
    rows = []
    for i, rec in enumerate(df.to_dict("records"), start=1):
        row: dict = {}
        for k, v in rec.items():
            if v == "":
                continue
            if k in ("timestamp", "confidence"):
                try:
                    row[k] = float(v)
                except ValueError:
                    raise InputError(f"{path}: row {i} has a non-numeric '{k}'") from None
            elif k == "probabilities":
                try:
                    row[k] = json.loads(v)
                except (ValueError, RecursionError):
                    raise InputError(f"{path}: row {i}: 'probabilities' is not a JSON object") from None
            else:
                row[k] = v
        rows.append(row)
    return rows


def _check_channels(channels: dict[str, pd.DataFrame]) -> None:
    """Channels must be non-empty, not named start/end/timestamp, and overlap pairwise in time."""
    if not channels:
        raise InputError("no channels to sync")
    spans = {}
    for name, df in channels.items():
        if name in ("start", "end", "timestamp"):
            raise InputError(f"channel name {name!r} is reserved")
        if df.empty:
            raise InputError(f"channel {name} has no samples")
        spans[name] = (float(df["timestamp"].min()), float(df["timestamp"].max()))
    names = list(spans)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if max(spans[a][0], spans[b][0]) > min(spans[a][1], spans[b][1]):
                raise InputError(f"channels {a} and {b} do not overlap in time")


def sync_windows(channels: dict[str, pd.DataFrame], window: float) -> pd.DataFrame:
    """One row per window [k·S, (k+1)·S) from the earliest to the latest sample over all channels.

    Each channel column holds the mean vector of its samples in the window, or None when it has none.
    """
    if not window > 0:
        raise InputError(f"window must be positive, got {window}")
    _check_channels(channels)

    def index(t: float) -> int:
        return math.floor(t / window + 1e-9)  # tolerate float error: 0.3 / 0.1 belongs to window 3

    ts = pd.concat([df["timestamp"] for df in channels.values()])
    check_span(float(ts.min()), float(ts.max()), window)
    ks = range(index(float(ts.min())), index(float(ts.max())) + 1)
    rows = [{"start": k * window, "end": (k + 1) * window} for k in ks]
    for name, df in channels.items():
        bins: dict[int, list[Vector]] = {}
        for _, row in df.iterrows():
            v = _vector(row)
            if v is not None:
                bins.setdefault(index(float(row["timestamp"])), []).append(v)
        for k, r in zip(ks, rows, strict=True):
            r[name] = _mean(bins[k]) if k in bins else None
    return _frame(rows, ["start", "end", *channels])


def sync_nearest(channels: dict[str, pd.DataFrame], reference: str, tolerance: float) -> pd.DataFrame:
    """One row per reference sample: each other channel's nearest sample within ``tolerance`` s (earlier on ties).

    Columns: timestamp, start and end (all the reference timestamp), then one vector column per channel.
    """
    if reference not in channels:
        raise InputError(f"reference channel {reference!r} not among {', '.join(channels)}")
    _check_channels(channels)
    other = {n: (df["timestamp"].to_numpy(float), [_vector(r) for _, r in df.iterrows()]) for n, df in channels.items()}
    rows = []
    for _, ref in channels[reference].iterrows():
        t = float(ref["timestamp"])
        row: dict = {"timestamp": t, "start": t, "end": t}
        for name, (times, vecs) in other.items():
            if name == reference:
                row[name] = _vector(ref)
                continue
            d = np.abs(times - t)
            j = int(np.argmin(d))  # times are sorted, so the first minimum is the earlier sample
            row[name] = vecs[j] if d[j] <= tolerance + 1e-9 else None
        rows.append(row)
    return _frame(rows, ["timestamp", "start", "end", *channels])


def fuse_channels(
    synced: pd.DataFrame, weights: dict[str, float], classes: list[str], threshold: float = 0.5, hold: int = 2
) -> pd.DataFrame:
    """Weighted vote per synced row, smoothed by a hysteresis state machine.

    Vote: the weighted mean of the available channels' vectors over ``classes`` (weights renormalised over the
    channels present in the row); ``fused_label`` is its argmax (class order on ties), ``fused_score`` its value.

    State machine (deterministic): ``state_label`` starts as None and switches to class c only after ``hold``
    consecutive rows in which c is the fused label, c differs from the state, its score exceeds the row's
    threshold and beats the state label's score in that row. Any other row resets the count. The row threshold
    is ``threshold``, +0.1 in the row right after a switch (no immediate switch back), and +0.1 more when only
    one channel is available while several are weighted (less corroboration needs more evidence); capped at 1.
    Rows with no channel keep the state and the count.
    """
    if hold < 1 or not classes:
        raise InputError(f"fuse_channels needs hold >= 1 (got {hold}) and at least one class")
    columns = ["start", "end", "fused_label", "fused_score", "state_label", "channels_used"]
    missing = [n for n in weights if n not in synced.columns]
    if missing:
        raise InputError(f"weights name channels not in the synced table: {', '.join(missing)}")
    several = sum(w > 0 for w in weights.values()) > 1
    state: str | None = None
    pending, count, just_switched = None, 0, False
    out = []
    for _, row in synced.iterrows():
        used = [n for n, w in weights.items() if w > 0 and isinstance(row[n], dict)]
        total = sum(weights[n] for n in used)
        fused = np.array([sum(weights[n] * row[n].get(c, 0.0) for n in used) / total if used else 0.0 for c in classes])
        label = classes[int(np.argmax(fused))] if used else None
        score = float(fused.max()) if used else 0.0
        limit = min(1.0, threshold + 0.1 * just_switched + 0.1 * (several and len(used) == 1))
        just_switched = False
        current = float(fused[classes.index(state)]) if state in classes else 0.0
        if label is not None and label != state and score > limit and score > current:
            count = count + 1 if label == pending else 1
            pending = label
            if count >= hold:
                state, pending, count, just_switched = label, None, 0, True
        elif used:
            pending, count = None, 0
        out.append(dict(zip(columns, (row["start"], row["end"], label, score, state, used), strict=True)))
    return _frame(out, columns)


def load_channel_file(path: Path, face: str | int = "largest") -> pd.DataFrame:
    """A channel from a file: ferkit records (JSONL/CSV/Parquet with ``face_id``) or another channel's JSONL/CSV."""
    from ferkit.analysis.records import load_jsonl, read_records, to_record_dicts

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: channel file not found")
    fmt = path.suffix.lstrip(".").lower()
    try:
        if fmt == "parquet":
            records = to_record_dicts(read_records(path, fmt))
        elif fmt == "jsonl" and '"face_id"' in next((ln for ln in read_lines(path) if ln.strip()), ""):
            records = load_jsonl(path)
        elif fmt == "csv" and "face_id" in next(iter(read_lines(path)), "").split(","):
            records = to_record_dicts(read_records(path, "csv"))
        else:
            return read_channel(path)
    except InputError:
        raise
    except Exception as e:  # pandas, pyarrow and json all raise their own types on a damaged file
        raise InputError(f"{path}: unreadable records file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
    return face_channel(records, face)


def channel_name(path: str | Path) -> str:
    """A channel's name: its file stem, with bytes that are not UTF-8 written as ``\\xNN`` (names become JSON keys)."""
    return os.fsencode(Path(path).stem).decode("utf-8", "backslashreplace")


def fuse_files(
    paths: list[Path],
    window: float | None = 1.0,
    tolerance: float | None = None,
    weights: dict[str, float] | None = None,
    face: str | int = "largest",
    threshold: float = 0.5,
    hold: int = 2,
) -> pd.DataFrame:
    """Read channels (named by file stem), sync them (windows of ``window`` s, or nearest to the first file within
    ``tolerance`` s) and fuse them; returns the fused table with each channel's vector per row."""
    check_fuse_options(window, tolerance, threshold, weights)
    names = [channel_name(p) for p in paths]
    if len(set(names)) != len(names):
        raise InputError(f"channel files need distinct names, got {', '.join(names)}")
    channels = {n: load_channel_file(Path(p), face) for n, p in zip(names, paths, strict=True)}
    if tolerance is not None:
        synced = sync_nearest(channels, names[0], tolerance)
    else:
        if window is None or window <= 0:
            raise InputError(f"--window must be a positive number of seconds, got {window}")
        synced = sync_windows(channels, window)
    weights = weights or dict.fromkeys(names, 1.0)
    unknown = [n for n in weights if n not in channels]
    if unknown:
        raise InputError(f"--weights names unknown channels: {', '.join(unknown)} (channels: {', '.join(names)})")
    vectors = [v for n in names for v in synced[n] if isinstance(v, dict)]
    classes = union_classes([list(v) for v in vectors])
    fused = fuse_channels(synced, weights, classes, threshold, hold)
    for n in names:
        fused[n] = synced[n].to_numpy()
    return fused
