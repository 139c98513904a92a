"""``export``: the labelled faces of a queue as a ``<label>/<id>.png`` dataset plus ``labels.csv``.

Images are written atomically and never overwrite a file; nothing is written outside the dataset folder (labels
must be plain class names, ids are hex digests). ``labels.csv`` is replaced atomically by a superset of itself:
rows of earlier exports are kept as they were.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ferkit.curation.queue import Queue, check_face_id
from ferkit.errors import InputError
from ferkit.labels.taxonomy import Taxonomy
from ferkit.media.files import OutputLock, atomic_write_bytes, atomic_write_text, check_out_dir

CSV_NAME = "labels.csv"
COLUMNS = (
    "id", "file", "label", "note", "source", "timestamp", "frame_index", "track",
    "reasons", "model_emotion", "confidence", "aus", "speaking",
)  # fmt: skip
SAFE_LABEL = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")


@dataclass
class ExportSummary:
    written: int = 0
    already: int = 0  # exported before with the same label
    changed: list[str] = field(default_factory=list)  # exported before under another label: left as it was
    csv: Path | None = None


def _inside(root: Path, path: Path) -> Path:
    """``path`` when it resolves inside ``root`` (no link or name leads out), else ``InputError``."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise InputError(f"{path}: refused, it would be written outside {root}")
    return path


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {row["id"]: row for row in csv.DictReader(fh) if row.get("id")}
    except (OSError, UnicodeDecodeError, KeyError, csv.Error) as e:
        raise InputError(f"{path}: existing labels CSV cannot be read ({e}); move it away to export") from None


def export(queue: Queue, out: Path | str, taxonomy: Taxonomy | None = None) -> ExportSummary:
    """Write every labelled face of ``queue`` into ``out`` (see the module doc); returns what was done. With
    ``taxonomy``, a label outside it is refused before anything is written."""
    out = check_out_dir(out, "--dataset", inputs=[queue.dir])
    summary = ExportSummary()
    rows = queue.query("SELECT f.*, l.label, l.note FROM faces f JOIN labels l ON l.face_id = f.id ORDER BY l.at, f.id")
    labels = {r["label"] for r in rows}
    if bad := sorted(x for x in labels if not SAFE_LABEL.match(x) or (taxonomy and x not in taxonomy.classes)):
        where = f"taxonomy {taxonomy.name!r}" if taxonomy else "plain class names"
        raise InputError(
            f"labels {', '.join(map(repr, bad))[:200]} in {queue.dir} are not in {where}; nothing exported"
        )
    with OutputLock(out / CSV_NAME):
        out.mkdir(parents=True, exist_ok=True)
        csv_path = _inside(out, out / CSV_NAME)
        done = _read_csv(csv_path)
        for r in rows:
            fid, label = check_face_id(r["id"]), r["label"]
            prior = done.get(fid)
            if prior is not None and prior["label"] != label:
                summary.changed.append(fid)
                continue
            rel = f"{label}/{fid}.png"
            dst = _inside(out, out / label / f"{fid}.png")
            if dst.exists() or os.path.lexists(dst):
                summary.already += 1
            else:
                atomic_write_bytes(dst, queue.crop_path(fid).read_bytes())
                summary.written += 1
            if prior is None:
                done[fid] = {
                    "id": fid,
                    "file": rel,
                    "label": label,
                    "note": r["note"],
                    "source": r["source"],
                    "timestamp": "" if r["timestamp"] is None else r["timestamp"],
                    "frame_index": r["frame_index"],
                    "track": "" if r["track"] is None else r["track"],
                    "reasons": ";".join(json.loads(r["reasons"])),
                    "model_emotion": r["emotion"] or "",
                    "confidence": "" if r["confidence"] is None else r["confidence"],
                    "aus": r["aus"] or "",
                    "speaking": "" if r["speaking"] is None else r["speaking"],
                }
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(done.values())
        atomic_write_text(csv_path, buf.getvalue())
        summary.csv = csv_path
    return summary
