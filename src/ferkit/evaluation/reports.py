"""Report files of ``ferkit evaluate``: JSON, a Markdown comparison, confusion CSVs and plots per block.

Input is the report document of :func:`ferkit.evaluation.scoring.report` (``{"ferkit_version", "results": [block,
...]}``);
every block is one model × dataset, so the Markdown tables put blocks side by side. A labelled-video block
(:mod:`ferkit.evaluation.videos`) gives two summary rows, frames and clips, and its clips a table of their own.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ferkit.evaluation.plots import plot_class_comparison, plot_confusion, plot_confusion_grid, plot_reliability
from ferkit.media.files import atomic_write_text, check_out_dir, check_writable

SUMMARY_COLUMNS = [
    "#",
    "model",
    "dataset",
    "split",
    "n",
    "accuracy",
    "balanced acc.",
    "macro-F1",
    "weighted F1",
    "ECE",
    "misses",
]


def fmt(x: float | None) -> str:
    """A metric as shown in the tables: three decimals, ``n/a`` for missing."""
    return "n/a" if x is None else f"{x:.3f}"


def dataset_name(block: dict) -> str:
    """The dataset folder's name (the full path is in the protocol)."""
    return Path(block["dataset"]).name or str(block["dataset"])


def levels(block: dict) -> list[tuple[str, dict]]:
    """A block's summary rows as (dataset cell, metrics): the block itself, or its frame and clip levels (videos)."""
    if "clip_level" not in block:
        return [(dataset_name(block), block)]
    return [
        (f"{dataset_name(block)} ({block['unit']})", block),
        (f"{dataset_name(block)} (clips)", block["clip_level"]),
    ]


def block_label(k: int, block: dict) -> str:
    """``k: model @ dataset-name`` (numbered, since one model may appear twice, e.g. with and without calibration)."""
    return f"{k}: {block['model']} @ {dataset_name(block)}"


def slugs(blocks: list[dict]) -> list[str]:
    """Filesystem-safe, unique ``<model>_<dataset-folder-name>`` per block (``_2``, ``_3``… on repeats)."""
    out: list[str] = []
    for b in blocks:
        base = (
            re.sub(r"[^A-Za-z0-9._-]+", "-", f"{Path(str(b['model'])).name}_{dataset_name(b)}").strip("-.") or "block"
        )
        slug, n = base, 2
        while slug in out:
            slug, n = f"{base}_{n}", n + 1
        out.append(slug)
    return out


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]], align_from: int = 1) -> list[str]:
    rule = ["---" if i < align_from else "---:" for i in range(len(header))]
    return [_row(header), _row(rule), *(_row(r) for r in rows)]


def markdown_table(doc: dict) -> str:
    """The comparison table: one row per block (two for videos: frames and clips) with its headline metrics."""
    rows = [
        [
            k,
            b["model"],
            name,
            b.get("protocol", {}).get("split", "all"),
            m["n"],
            fmt(m["accuracy"]),
            fmt(m.get("balanced_accuracy")),
            fmt(m["macro_f1"]),
            fmt(m.get("weighted_f1")),
            fmt(m.get("ece")),
            m["misses"],
        ]
        for k, b in enumerate(doc["results"], 1)
        for name, m in levels(b)
    ]
    return "\n".join(_table(SUMMARY_COLUMNS, rows, align_from=4)) + "\n"


def _calibration_text(cal: dict | None) -> str:
    if not cal:
        return "none"
    bias = ", ".join(f"{x:+.2f}" for x in cal.get("bias") or [])
    return (
        f"{cal.get('method', '?')} (objective {cal.get('objective', '?')}), T={cal['temperature']:.3f}, bias [{bias}]"
    )


def markdown_report(doc: dict) -> str:
    """The whole Markdown report: comparison table, per-class recall table, protocol of each block."""
    blocks = doc["results"]
    lines = [f"# ferkit evaluation (ferkit {doc.get('ferkit_version', '?')})", "", markdown_table(doc).rstrip(), ""]
    classes = list(dict.fromkeys(c for b in blocks for c in b["per_class"]))
    rows = [[c, *(fmt(b["per_class"][c]["recall"]) if c in b["per_class"] else "–" for b in blocks)] for c in classes]
    header = ["class", *(block_label(k, b) for k, b in enumerate(blocks, 1))]
    lines += ["## Per-class recall", "", *_table(header, rows), "", "## Protocol", ""]
    for k, b in enumerate(blocks, 1):
        p = b.get("protocol", {})
        sha = p.get("model_sha256") or b.get("model_sha256") or ""
        mapping = ", ".join(f"{f} → {c}" for f, c in (p.get("class_mapping") or {}).items()) or "n/a"
        lines += [
            f"### {block_label(k, b)}",
            "",
            f"- dataset: `{p.get('dataset', b['dataset'])}`",
            f"- split: {p.get('split', 'all')}",
            f"- model: {p.get('model', b['model'])}, sha256 `{sha[:12]}…`",
            f"- calibration: {_calibration_text(p.get('calibration'))}",
            f"- input: {'face crops' if p.get('crops', b.get('crops')) else 'detector ' + str(p.get('detector'))}",
            f"- class mapping: {mapping}",
            *_video_protocol(p),
            "",
        ]
    return "\n".join(lines + _clip_tables(blocks))


def _video_protocol(p: dict) -> list[str]:
    if p.get("media") != "video":
        return []
    rate = f"{p['fps']:g} fps" if p["fps"] else "every frame"
    return [f"- video: {rate}; frame label `{p['frame_label']}`; clip label: {p['clip_label']}"]


def _clip_tables(blocks: list[dict]) -> list[str]:
    """Per-clip rows of the labelled-video blocks: true and predicted label, frames, the three largest shares."""
    lines: list[str] = []
    for k, b in enumerate(blocks, 1):
        if "per_clip" not in b:
            continue
        rows = [
            [
                Path(r["clip"]).name,
                r["true"],
                r["predicted"],
                r["frames_scored"],
                r["frames_without_face"],
                ", ".join(f"{c} {v:.2f}" for c, v in sorted(r["shares"].items(), key=lambda x: -x[1])[:3] if v),
            ]
            for r in b["per_clip"]
        ]
        header = ["clip", "true", "predicted", "frames scored", "no face", "frame shares"]
        lines += [f"## Clips of {block_label(k, b)}", "", *_table(header, rows, align_from=3), ""]
        if b.get("skipped_classes"):
            lines += [f"Skipped (class unknown to the model): {b['skipped_classes']} clip(s) per folder.", ""]
    return lines


def write_confusion_csv(block: dict, path: Path) -> Path:
    """Counts with the labels as header row and first column (rows true, columns predicted)."""
    labels = block["confusion_matrix"]["labels"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["true\\predicted", *labels])
        w.writerows([label, *row] for label, row in zip(labels, block["confusion_matrix"]["matrix"], strict=True))
    return Path(path)


def write_report(doc: dict, out_dir: Path) -> list[Path]:
    """Write report.json, report.md, per-block confusion CSV/PNG and reliability PNG, plus comparison plots."""
    out_dir = check_out_dir(out_dir, "--out-dir")
    blocks = doc["results"]
    names = ["report.json", "report.md", "per_class_recall.png", "confusion_grid.png"]
    for slug in slugs(blocks):
        names += [f"confusion_{slug}.csv", f"confusion_{slug}.png", f"reliability_{slug}.png"]
    for name in names:  # every file it will write, before the first is written
        check_writable(out_dir / name, "--out-dir file")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json", out_dir / "report.md"]
    atomic_write_text(written[0], json.dumps(doc, indent=1) + "\n")
    atomic_write_text(written[1], markdown_report(doc))
    for b, slug in zip(blocks, slugs(blocks), strict=True):
        written.append(write_confusion_csv(b, out_dir / f"confusion_{slug}.csv"))
        written.append(plot_confusion(b, out_dir / f"confusion_{slug}.png"))
        written.append(plot_reliability(b, out_dir / f"reliability_{slug}.png"))
    if len(blocks) >= 2:
        written.append(plot_class_comparison(blocks, out_dir / "per_class_recall.png"))
        written.append(plot_confusion_grid(blocks, out_dir / "confusion_grid.png"))
    return written
