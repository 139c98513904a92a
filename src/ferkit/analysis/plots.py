"""Plots of analysis records: a per-video timeline, an emotion-distribution chart and fused channels (matplotlib,
Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ferkit.analysis.records import read_records
from ferkit.media.video import is_video

#: One colour per class, fixed so every plot of ferkit reads the same.
COLORS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#2ca02c",
    "neutral": "#7f7f7f",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "contempt": "#e377c2",
}


def _color(c: str | None) -> str:
    return "#dddddd" if not isinstance(c, str) else COLORS.get(c, "#17becf")  # None/NaN: a gated face


def _face_axes(records: pd.DataFrame, height: float, **kw: object):
    """A figure with one row of axes per face track, and ``(axes, that track's records by time)`` per face; with no
    face at all, one row saying so and no pairs."""
    faces = records.dropna(subset=["face_id"])
    ids = sorted(faces["face_id"].unique())
    fig, axes = plt.subplots(max(len(ids), 1), 1, figsize=(11, height * max(len(ids), 1)), squeeze=False, sharex=True,
                             **kw)  # fmt: skip
    if not ids:
        axes[0, 0].text(0.5, 0.5, "no face found", ha="center", va="center", transform=axes[0, 0].transAxes)
    by_id = [faces[faces["face_id"] == fid].sort_values("timestamp") for fid in ids]
    tracks = list(zip(axes[: len(ids), 0], by_id, strict=True))
    return fig, axes, tracks


def plot_timeline(records: pd.DataFrame, out: Path, title: str | None = None) -> Path:
    """Stacked smoothed probabilities over time for each face, with raw and smoothed label bands below.

    ``records`` are one video's records (the ``probabilities`` columns as dicts, as in JSONL). Gated faces (no
    emotion, no smoothed values) leave a gap in the stack and a light gray mark in the label bands.
    """
    fig, axes, tracks = _face_axes(records, 2.8)
    for ax, d in tracks:
        t = d["timestamp"].to_numpy(float)
        sp = [p if isinstance(p, dict) else None for p in d["smoothed_probabilities"]]
        classes = list(next((p for p in sp if p is not None), d["probabilities"].iloc[0]))
        probs = np.array([[np.nan if p is None else p[c] for c in classes] for p in sp])
        ax.stackplot(t, np.nan_to_num(probs).T, labels=classes, colors=[_color(c) for c in classes], alpha=0.85)
        for row, col in ((-0.12, "emotion"), (-0.24, "smoothed_emotion")):
            ax.scatter(t, np.full(len(t), row), c=[_color(c) for c in d[col]], marker="|", s=120)
        ax.set_ylim(-0.3, 1)
        ax.set_yticks([-0.24, -0.12, 0, 0.5, 1], ["smoothed", "raw", "0", "0.5", "1"])
        ax.set_ylabel(f"face {int(d['face_id'].iloc[0])}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title or "emotion timeline (smoothed probabilities; label bands: raw and smoothed)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_distribution(records: pd.DataFrame, out: Path, column: str = "smoothed_emotion") -> Path:
    """Bar chart of how often each emotion was assigned (records without a face count as 'no face', faces a gate
    withheld as 'gated')."""
    labels = records[column].copy()
    if "gated" in records.columns:
        gated = records["gated"].map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else False)
        labels[gated & labels.isna()] = "gated"
    counts = labels.fillna("no face").value_counts()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(
        counts.index,
        counts.to_numpy(),
        color=["#cccccc" if c in ("no face", "gated") else _color(c) for c in counts.index],
    )
    ax.set_ylabel("records")
    ax.set_title(f"emotion distribution ({column}, n={len(records)})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Save a figure (creating its folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not fig.get_constrained_layout():
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_channels(fused: pd.DataFrame, channels: list[str], path: Path) -> Path:
    """One label band per channel (its top class per row) plus the fused and state-machine labels over time."""
    rows = [*channels, "fused", "state"]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 1.2))
    seen: set[str] = set()
    for y, name in enumerate(rows):
        for _, r in fused.iterrows():
            if name == "fused":
                label = r["fused_label"]
            elif name == "state":
                label = r["state_label"]
            else:
                v = r[name]
                label = max(v, key=v.get) if isinstance(v, dict) and v else None
            if isinstance(label, str):
                seen.add(label)
                ax.barh(y, r["end"] - r["start"], left=r["start"], color=_color(label), height=0.8)
    ax.set_yticks(range(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    seen = sorted({lab for col in ("fused_label", "state_label") for lab in fused[col] if isinstance(lab, str)})
    ax.legend(
        handles=[plt.Rectangle((0, 0), 1, 1, color=_color(c)) for c in seen],
        labels=seen,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
    )
    ax.set_title("channels and fused timeline")
    return save_figure(fig, path)


def plot_aus(records: pd.DataFrame, out: Path, title: str | None = None) -> Path:
    """AU heatmap over time for each face of one video (presence probability, AU rows), with the speaking
    probability and the frames where hard-case rules fire below it (records of an ``--aus`` run)."""
    fig, axes, tracks = _face_axes(records, 4.2, constrained_layout=True)
    image = None
    for ax, d in tracks:
        t = d["timestamp"].to_numpy(float)
        keys = next((list(a) for a in d["aus"] if isinstance(a, dict)), [])
        keys = [k for k in keys if "_" not in k]  # bilateral keys; the sides add little to an overview
        grid = np.array([[a[k] if isinstance(a, dict) else np.nan for k in keys] for a in d["aus"]]).T
        extent = (t.min(), t.max() if len(t) > 1 else t.min() + 1, len(keys) - 0.5, -0.5)
        image = ax.imshow(grid, aspect="auto", cmap="magma", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.set_ylim(len(keys) + 1.6, -0.5)
        speaking = d["speaking"].to_numpy(float)
        ax.plot(t, len(keys) + 0.5 - 0.9 * np.nan_to_num(speaking, nan=0.0), color="#2ca02c", lw=1, label="speaking")
        hits = [bool(h) for h in d["hard_case_rules"].map(lambda v: v is not None and len(v) > 0)]
        ax.scatter(t[hits], np.full(int(sum(hits)), len(keys) + 1.2), marker="|", color="#d62728", s=60)
        ax.set_yticks([*range(len(keys)), len(keys) + 0.5, len(keys) + 1.2], [*keys, "speaking", "hard case"])
        ax.set_ylabel(f"face {int(d['face_id'].iloc[0])}")
    if image is not None:
        fig.colorbar(image, ax=axes[:, 0].tolist(), label="AU presence probability", shrink=0.6)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title or "action units over time")
    return save_figure(fig, out)


def output_plots(out: Path, fmt: str) -> list[Path]:
    """The distribution plot of a records file, and a timeline (plus an AU plot for --aus) per video in it."""
    frame = read_records(out, fmt)
    if frame.empty:
        return []
    base = out.with_suffix("")
    made = [plot_distribution(frame, base.with_name(base.name + ".distribution.png"))]
    several = frame["source"].nunique() > 1
    for src, d in frame.groupby("source"):
        if d["timestamp"].notna().any() and is_video(Path(src)):
            name = f"{base.name}.{Path(src).stem}.timeline.png" if several else f"{base.name}.timeline.png"
            made.append(plot_timeline(d, base.with_name(name), title=f"{Path(src).name}: emotion timeline"))
            if "aus" in d.columns and d["aus"].map(lambda v: isinstance(v, dict)).any():
                au_name = name.replace(".timeline.png", ".aus.png")
                made.append(plot_aus(d, base.with_name(au_name), title=f"{Path(src).name}: action units"))
    return made
