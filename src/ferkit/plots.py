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


def _color(c: str | None) -> str:
    return "#dddddd" if not isinstance(c, str) else COLORS.get(c, "#17becf")  # None/NaN: a gated face


def plot_timeline(records: pd.DataFrame, out: Path, title: str | None = None) -> Path:
    """Stacked smoothed probabilities over time for each face, with raw and smoothed label bands below.

    ``records`` are one video's records (the ``probabilities`` columns as dicts, as in JSONL). Gated faces (no
    emotion, no smoothed values) leave a gap in the stack and a light gray mark in the label bands.
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
        sp = [p if isinstance(p, dict) else None for p in d["smoothed_probabilities"]]
        classes = list(next((p for p in sp if p is not None), d["probabilities"].iloc[0]))
        probs = np.array([[np.nan if p is None else p[c] for c in classes] for p in sp])
        ax.stackplot(t, np.nan_to_num(probs).T, labels=classes, colors=[_color(c) for c in classes], alpha=0.85)
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


# --- evaluation report plots (blocks of ``ferkit.evaluate``) ---


def _block_name(block: dict) -> str:
    """``model @ dataset-folder-name`` for titles and legends."""
    return f"{block['model']} @ {Path(block['dataset']).name or block['dataset']}"


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _confusion_panel(ax: plt.Axes, block: dict, normalize: bool = True) -> None:
    """Heatmap of one block's confusion matrix (rows true, columns predicted), counts annotated."""
    labels = block["confusion_matrix"]["labels"]
    counts = np.asarray(block["confusion_matrix"]["matrix"], dtype=float).reshape(len(labels), len(labels))
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalize else counts
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{shown[i, j]:.2f}\n({int(counts[i, j])})" if normalize else str(int(counts[i, j]))
            dark = shown[i, j] > (0.5 if normalize else shown.max() / 2)
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_block_name(block), fontsize=10)


def plot_confusion(block: dict, path: Path, normalize: bool = True) -> Path:
    """Confusion-matrix heatmap of one evaluation block (row-normalised by default, counts in brackets)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    _confusion_panel(ax, block, normalize)
    return _save(fig, path)


def plot_reliability(block: dict, path: Path) -> Path:
    """Reliability diagram: accuracy per confidence bin vs the diagonal, bin counts as a light histogram."""
    bins = block.get("reliability") or []
    fig, ax = plt.subplots(figsize=(5.5, 5))
    hist = ax.twinx()
    if bins:
        lows = np.array([b["low"] for b in bins])
        widths = np.array([b["high"] - b["low"] for b in bins])
        counts = np.array([b["count"] for b in bins])
        hist.bar(lows, counts, width=widths, align="edge", color="#cccccc", alpha=0.5, zorder=0)
        filled = [b for b in bins if b["count"] and b["accuracy"] is not None]
        ax.bar(
            [b["low"] for b in filled],
            [b["accuracy"] for b in filled],
            width=[b["high"] - b["low"] for b in filled],
            align="edge",
            color="#1f77b4",
            edgecolor="black",
            alpha=0.8,
            label="accuracy",
        )
    ax.set_zorder(hist.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot([0, 1], [0, 1], "--", color="#d62728", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    hist.set_ylabel("images per bin", color="#888888")
    ax.legend(loc="upper left", fontsize=8)
    ece = block.get("ece")
    ax.set_title(f"{_block_name(block)}\nECE = {'n/a' if ece is None else f'{ece:.3f}'}", fontsize=10)
    return _save(fig, path)


def plot_class_comparison(blocks: list[dict], path: Path, metric: str = "recall") -> Path:
    """Grouped bars of a per-class metric (``recall``, ``precision`` or ``f1``): one bar per block per class."""
    if metric not in ("recall", "precision", "f1"):
        raise ValueError(f"metric must be recall, precision or f1, got {metric!r}")
    classes = list(dict.fromkeys(c for b in blocks for c in b["per_class"]))
    width = 0.8 / max(len(blocks), 1)
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(classes) * max(1, len(blocks) / 2)), 4))
    for k, b in enumerate(blocks):
        vals = [b["per_class"].get(c, {}).get(metric, np.nan) for c in classes]
        ax.bar(x + (k - (len(blocks) - 1) / 2) * width, vals, width, label=f"{k + 1}: {_block_name(b)}")
    ax.set_xticks(x, classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(f"per-class {metric}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def plot_confusion_grid(blocks: list[dict], path: Path) -> Path:
    """One row-normalised confusion-matrix panel per block, in a grid of up to three columns."""
    cols = min(3, max(len(blocks), 1))
    rows = -(-max(len(blocks), 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 5.5 * rows), squeeze=False)
    for ax in axes.flat[len(blocks) :]:
        ax.axis("off")
    for k, (ax, b) in enumerate(zip(axes.flat, blocks, strict=False)):
        _confusion_panel(ax, b)
        ax.set_title(f"{k + 1}: {_block_name(b)}", fontsize=10)
    return _save(fig, path)


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
    return _save(fig, path)
