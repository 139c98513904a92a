"""``ferkit corpus report``: the figures of :mod:`ferkit.corpus.metrics` as CSV tables, PNGs (matplotlib), one
self-contained HTML file (Plotly, its JavaScript inlined: no network needed to view it) and a Markdown summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ferkit.corpus.metrics import (
    Corpus,
    change_points,
    corpus_of,
    group_shares,
    group_timelines,
    timeline_table,
    video_table,
)
from ferkit.corpus.parts import load_parts
from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, check_out_dir

#: Colours per emotion, shared by the PNGs and the HTML.
COLOURS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#ffbf00",
    "neutral": "#9e9e9e",
    "sad": "#1f77b4",
    "surprise": "#2ca02c",
    "contempt": "#e377c2",
}


@dataclass
class Report:
    """The tables of a report and the files written."""

    videos: pd.DataFrame
    groups: pd.DataFrame
    timelines: pd.DataFrame
    group_timelines: pd.DataFrame
    changes: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def colour(k: str) -> str:
    return COLOURS.get(k, "#17becf")


def _write_csv(frame: pd.DataFrame, path: Path, files: list[Path]) -> None:
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
    files.append(path)


def pick_group(c: Corpus, by: str | None) -> str | None:
    """The manifest column to group by: ``by`` (checked), else the first manifest column, else none."""
    if by is None:
        return c.columns[0] if c.columns else None
    if by not in c.columns:
        have = ", ".join(c.columns) or "none"
        raise InputError(f"--group {by!r} is not a manifest column of this run (it has: {have})")
    return by


def _png_shares(r: Report, c: Corpus, by: str | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = r.videos.sort_values([by, "video_id"] if by else ["video_id"], key=lambda s: s.astype(str))
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.32 * len(v) + 1.2)))
    left = pd.Series(0.0, index=v.index)
    labels = [f"{t} [{g}]" if by else str(t) for t, g in zip(v["title"], v[by] if by else v["title"], strict=True)]
    for k in c.classes:
        ax.barh(labels, v[f"share_{k}"], left=left, color=colour(k), label=k)
        left += v[f"share_{k}"]
    ax.invert_yaxis()
    ax.set_xlabel("share of face-frames")
    ax.set_xlim(0, 1)
    ax.legend(ncol=len(c.classes), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _png_timelines(frame: pd.DataFrame, key: str, classes: list[str], path: Path, limit: int = 24) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(frame[key]))[:limit]
    cols = min(3, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.6 * rows), squeeze=False, sharex=True, sharey=True)
    for ax, name in zip(axes.flat, names, strict=False):
        t = frame[frame[key] == name]
        for k in classes:
            ax.plot(t["pct"], t[k], color=colour(k), label=k, lw=1.4)
        ax.set_title(str(name), fontsize=9)
        ax.set_ylim(0, 1)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("% of runtime")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _html(r: Report, c: Corpus, by: str | None, title: str) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    v = r.videos.sort_values([by, "video_id"] if by else ["video_id"], key=lambda s: s.astype(str))
    bars = go.Figure(
        [go.Bar(name=k, x=v["title"], y=v[f"share_{k}"], marker_color=colour(k)) for k in c.classes],
        layout={"barmode": "stack", "title": "Emotion shares per video" + (f" (grouped by {by})" if by else "")},
    )
    if by:
        bars.update_xaxes(type="multicategory")
        for tr in bars.data:
            tr.x = [v[by].astype(str).tolist(), v["title"].tolist()]
    groups = list(dict.fromkeys(r.group_timelines["group"]))
    avg = make_subplots(rows=max(1, len(groups)), cols=1, subplot_titles=groups or ["no faces"], shared_xaxes=True)
    for i, g in enumerate(groups, 1):
        t = r.group_timelines[r.group_timelines["group"] == g]
        for k in c.classes:
            line = {"color": colour(k)}
            avg.add_scatter(x=t["pct"], y=t[k], name=k, line=line, legendgroup=k, showlegend=i == 1, row=i, col=1)
    avg.update_layout(title="Smoothed timelines averaged per group (% of runtime)", height=260 * max(1, len(groups)))
    per = go.Figure(layout={"title": "Smoothed timeline per video (% of runtime)"})
    vids = list(dict.fromkeys(r.timelines["video_id"]))
    for j, vid in enumerate(vids):
        t = r.timelines[r.timelines["video_id"] == vid]
        for k in c.classes:
            per.add_scatter(x=t["pct"], y=t[k], name=k, line={"color": colour(k)}, visible=j == 0)
    buttons = [
        {
            "label": vid,
            "method": "update",
            "args": [{"visible": [i // len(c.classes) == j for i in range(len(per.data))]}],
        }
        for j, vid in enumerate(vids)
    ]
    per.update_layout(updatemenus=[{"buttons": buttons, "x": 1.0, "y": 1.15}] if buttons else [])
    scatter = go.Figure(
        go.Scatter(x=v["entropy"], y=v["flatness"], mode="markers", text=v["title"], marker={"size": 9}),
        layout={"title": "Diversity (entropy) vs flatness", "xaxis_title": "entropy", "yaxis_title": "flatness"},
    )
    figs = [bars, avg, per, scatter]
    body = [f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figs)]
    table = r.videos.round(3).to_html(index=False, na_rep="")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1>{''.join(body)}<h2>Per video</h2>{table}</body></html>"
    )


def _markdown(r: Report, c: Corpus, by: str | None, run: Path) -> str:
    share = [f"share_{k}" for k in c.classes]
    lines = [
        f"# Corpus report: {run.name}",
        "",
        f"{len(r.videos)} videos; shares are of face-frames (per-frame emotion).",
    ]
    lines += ["", f"## Groups ({by or 'all videos'})", "", r.groups.round(3).to_markdown(index=False), ""]
    lines += ["![shares](shares.png)", "", "![group timelines](group_timelines.png)", ""]
    cols = ["title", *([by] if by else []), "duration_s", "face_frames", "faces_per_minute", "dominant"]
    cols += ["entropy", "flatness", *share]
    lines += ["## Per video", "", r.videos[cols].round(3).to_markdown(index=False), ""]
    lines += ["![video timelines](video_timelines.png)", "", "## Changes of the dominant emotion", ""]
    lines += [r.changes.round(1).to_markdown(index=False) if len(r.changes) else "None found.", ""]
    lines += ["Interactive charts: [report.html](report.html); tables: videos.csv, groups.csv, timelines.csv, "]
    lines[-1] += "group_timelines.csv, change_points.csv."
    return "\n".join(lines) + "\n"


def corpus_report(run: Path, out: Path | None = None, by: str | None = None) -> Report:
    """Compute and write the report of the run folder ``run`` into ``out`` (default: ``run``)."""
    run = Path(run)
    out = Path(out) if out is not None else run
    check_out_dir(out, "--out")
    c = corpus_of(load_parts(run))
    by = pick_group(c, by)
    videos = video_table(c)
    timelines = timeline_table(c)
    r = Report(
        videos, group_shares(videos, c.classes, by), timelines, group_timelines(c, timelines, by), pd.DataFrame()
    )
    r.changes = change_points(timelines, c.classes)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("videos", r.videos), ("groups", r.groups), ("timelines", r.timelines)):
        _write_csv(frame, out / f"{name}.csv", r.files)
    _write_csv(r.group_timelines, out / "group_timelines.csv", r.files)
    _write_csv(r.changes, out / "change_points.csv", r.files)
    _png_shares(r, c, by, out / "shares.png")
    _png_timelines(r.group_timelines, "group", c.classes, out / "group_timelines.png")
    _png_timelines(r.timelines, "video_id", c.classes, out / "video_timelines.png")
    r.files += [out / "shares.png", out / "group_timelines.png", out / "video_timelines.png"]
    r.files.append(atomic_write_text(out / "report.html", _html(r, c, by, f"Corpus report: {run.name}")))
    r.files.append(atomic_write_text(out / "report.md", _markdown(r, c, by, run)))
    return r
