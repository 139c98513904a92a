"""Plots of analysis records: a per-video timeline and an emotion-distribution chart (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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


def _color(c: str) -> str:
    return COLORS.get(c, "#17becf")


def plot_timeline(records: pd.DataFrame, out: Path, title: str | None = None) -> Path:
    """Stacked smoothed probabilities over time for each face, with raw and smoothed label bands below.

    ``records`` are one video's records (the ``probabilities`` columns as dicts, as in JSONL).
    """
    faces = records.dropna(subset=["face_id"])
    ids = sorted(faces["face_id"].unique()) or [None]
    fig, axes = plt.subplots(len(ids), 1, figsize=(11, 2.8 * len(ids)), squeeze=False, sharex=True)
    for ax, fid in zip(axes[:, 0], ids, strict=True):
        if fid is None:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
            continue
        d = faces[faces["face_id"] == fid].sort_values("timestamp")
        t = d["timestamp"].to_numpy(float)
        classes = list(d["smoothed_probabilities"].iloc[0])
        probs = np.array([[p[c] for c in classes] for p in d["smoothed_probabilities"]])
        ax.stackplot(t, probs.T, labels=classes, colors=[_color(c) for c in classes], alpha=0.85)
        for row, col in ((-0.12, "emotion"), (-0.24, "smoothed_emotion")):
            ax.scatter(t, np.full(len(t), row), c=[_color(c) for c in d[col]], marker="|", s=120)
        ax.set_ylim(-0.3, 1)
        ax.set_yticks([-0.24, -0.12, 0, 0.5, 1], ["smoothed", "raw", "0", "0.5", "1"])
        ax.set_ylabel(f"face {int(fid)}")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title or "emotion timeline (smoothed probabilities; label bands: raw and smoothed)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_distribution(records: pd.DataFrame, out: Path, column: str = "smoothed_emotion") -> Path:
    """Bar chart of how often each emotion was assigned (records without a face are counted as 'no face')."""
    counts = records[column].fillna("no face").value_counts()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(counts.index, counts.to_numpy(), color=[_color(c) if c != "no face" else "#cccccc" for c in counts.index])
    ax.set_ylabel("records")
    ax.set_title(f"emotion distribution ({column}, n={len(records)})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
