"""``ferkit queue stats``: what a queue holds — counts by reason, source, predicted class and AU pattern, what the
filters dropped — as JSON for scripts and a one-page HTML/PNG summary with example crops per reason."""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ferkit.curation.queue import Queue
from ferkit.media.files import atomic_write_bytes, atomic_write_text

AU_PRESENT = 0.5
EXAMPLES = 6


def au_pattern(aus: dict[str, float] | None) -> str | None:
    """The present AUs of a face as ``AU01+AU02`` (``none`` when none is; the one-sided ``_L``/``_R`` keys left out),
    or None without AUs."""
    if aus is None:
        return None
    present = sorted(k for k, v in aus.items() if v >= AU_PRESENT and "_" not in k)
    return "+".join(present) or "none"


def queue_stats(queue: Queue) -> dict[str, Any]:
    """The counts of a queue (see the module doc) as a JSON-able dict."""
    faces = queue.query("SELECT id, source, emotion, reasons, aus FROM faces")
    by_reason: Counter = Counter()
    by_class: Counter = Counter()
    by_pattern: Counter = Counter()
    by_source: Counter = Counter()
    for f in faces:
        by_reason.update(json.loads(f["reasons"]))
        by_class[f["emotion"] or "none"] += 1
        by_source[f["source"]] += 1
        p = au_pattern(json.loads(f["aus"]) if f["aus"] else None)
        if p is not None:
            by_pattern[p] += 1
    sources, dropped = [], Counter()
    seen = candidates = 0
    seconds = 0.0
    for s in queue.query("SELECT * FROM sources ORDER BY path"):
        d = json.loads(s["dropped"])
        dropped.update(d)
        seen += s["faces"]
        candidates += s["candidates"]
        seconds += s["seconds"] or 0.0
        sources.append(
            {
                "source": s["path"],
                "status": s["status"],
                "faces_seen": s["faces"],
                "candidates": s["candidates"],
                "kept": by_source.get(s["path"], 0),
                "video_seconds": s["seconds"],
                "dropped": d,
            }
        )
    labels = {r[0]: r[1] for r in queue.query("SELECT label, COUNT(*) FROM labels GROUP BY label ORDER BY 2 DESC")}
    return {
        "faces": len(faces),
        "labelled": sum(labels.values()),
        "faces_seen": seen,
        "candidates": candidates,
        "video_seconds": round(seconds, 3),
        "by_reason": dict(by_reason.most_common()),
        "by_class": dict(by_class.most_common()),
        "by_au_pattern": dict(by_pattern.most_common(20)),
        "by_label": labels,
        "dropped": dict(dropped.most_common()),
        "dropped_share_of_candidates": {k: round(v / candidates, 4) for k, v in dropped.items()} if candidates else {},
        "sources": sources,
    }


def _bars(ax, counts: dict[str, int], title: str) -> None:
    items = list(counts.items())[:15][::-1]
    ax.barh([k[:28] for k, _ in items] or ["(none)"], [v for _, v in items] or [0], color="#4a7bbf")
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)


def summary_png(stats: dict[str, Any]) -> bytes:
    """Four bar charts (reasons, predicted classes, AU patterns or sources, dropped) as one PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    _bars(axes[0][0], stats["by_reason"], f"kept faces by reason ({stats['faces']} faces)")
    _bars(axes[0][1], stats["by_class"], "predicted class")
    if stats["by_au_pattern"]:
        _bars(axes[1][0], stats["by_au_pattern"], "AU pattern (present AUs)")
    else:
        _bars(axes[1][0], {s["source"].rsplit("/", 1)[-1]: s["kept"] for s in stats["sources"]}, "kept per source")
    _bars(axes[1][1], stats["dropped"], f"dropped ({stats['candidates']} candidates)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _examples(queue: Queue, reason: str) -> list[tuple[str, bytes]]:
    rows = queue.query(
        "SELECT f.id, f.emotion FROM faces f WHERE EXISTS (SELECT 1 FROM json_each(f.reasons) WHERE value = ?) "
        "ORDER BY f.priority DESC, f.id LIMIT ?",
        (reason, EXAMPLES),
    )
    out = []
    for r in rows:
        path = queue.crop_path(r["id"])
        if path.is_file():
            out.append((f"{r['id']} ({r['emotion']})", path.read_bytes()))
    return out


def summary_html(queue: Queue, stats: dict[str, Any], png: bytes) -> str:
    """One self-contained page: the bar charts, a table per source and example crops per reason."""
    e = html.escape
    img = base64.b64encode(png).decode()
    rows = "".join(
        f"<tr><td>{e(s['source'])}</td><td>{s['faces_seen']}</td><td>{s['candidates']}</td><td>{s['kept']}</td>"
        f"<td>{e(', '.join(f'{k} {v}' for k, v in s['dropped'].items()))}</td></tr>"
        for s in stats["sources"]
    )
    examples = ""
    for reason in stats["by_reason"]:
        crops = "".join(
            f'<img title="{e(t)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
            for t, b in _examples(queue, reason)
        )
        examples += f"<h3>{e(reason)} ({stats['by_reason'][reason]})</h3><div>{crops}</div>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>queue summary</title>
<style>body{{font-family:sans-serif;margin:1em}}td,th{{padding:.2em .6em;border-bottom:1px solid #ddd}}
img{{margin:2px}}</style></head><body>
<h1>Queue {e(str(queue.dir))}</h1>
<p>{stats["faces"]} faces kept ({stats["labelled"]} labelled) of {stats["candidates"]} candidates among
{stats["faces_seen"]} faces seen in {stats["video_seconds"]:.0f} s of video.</p>
<img alt="bar charts" src="data:image/png;base64,{img}">
<h2>Sources</h2><table><tr><th>source</th><th>faces seen</th><th>candidates</th><th>kept</th><th>dropped</th></tr>
{rows}</table><h2>Examples per reason</h2>{examples}</body></html>"""


def write_summary(queue: Queue, out_dir: Path) -> dict[str, Path]:
    """``stats.json``, ``summary.png`` and ``summary.html`` in ``out_dir`` (each written atomically)."""
    stats = queue_stats(queue)
    png = summary_png(stats)
    return {
        "json": atomic_write_text(out_dir / "stats.json", json.dumps(stats, indent=2) + "\n"),
        "png": atomic_write_bytes(out_dir / "summary.png", png),
        "html": atomic_write_text(out_dir / "summary.html", summary_html(queue, stats, png)),
    }
