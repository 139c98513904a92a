"""Plots of evaluation reports (blocks of ``ferkit.evaluate``): confusion matrices, reliability diagrams, per-class
comparisons (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ferkit.analysis.plots import save_figure


def _block_name(block: dict) -> str:
    """``model @ dataset-folder-name`` for titles and legends."""
    return f"{block['model']} @ {Path(block['dataset']).name or block['dataset']}"


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
    return save_figure(fig, path)


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
    return save_figure(fig, path)


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
    return save_figure(fig, path)


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
    return save_figure(fig, path)
