"""What ``extract-faces`` leaves for training and attribution: ``tags.csv`` and ``rules.toml`` (read by the
``weak_tags`` training source), ``credits.csv`` and ``report.json``."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from ferkit.media.files import atomic_write_text
from ferkit.stock.config import query_keywords


def crop_tags(queries: list[dict[str, str]]) -> list[str]:
    """A crop's tags: the keywords of every query that found its photo, in order, without repeats."""
    return list(dict.fromkeys(k for q in queries for k in query_keywords(q["query"])))


def rules_toml(classes: dict[str, list[str]]) -> str:
    """Keyword rules: each class's queries as keyword sets (a crop is a class's when all keywords of one of its
    queries are among its tags, and no other class's are)."""
    lines = ["# Written by `ferkit extract-faces` from the pull config: one keyword set per query."]
    for cls, queries in classes.items():
        sets = ", ".join(json.dumps(query_keywords(q)) for q in queries)
        lines.append(f"{json.dumps(cls)} = [{sets}]")
    return "\n".join(lines) + "\n"


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_outputs(out: Path, state: dict[str, Any], classes: dict[str, list[str]], keys: list[str]) -> dict[str, Any]:
    """Write tags.csv, rules.toml (when the photos have queries), credits.csv and report.json; return the report."""
    tags, credits = [["file", "tags"]], [["file", "source", "id", "photographer", "page_url", "licence_url"]]
    dropped: Counter[str] = Counter()
    photo_lost: Counter[str] = Counter()  # photos without a kept face, by the reason their best face was dropped
    per_class: Counter[str] = Counter()
    kept = detected = with_face = 0
    for key in keys:
        rec = state["photos"].get(key)
        if rec is None:
            continue
        dropped.update(d["reason"] for d in rec["dropped"])
        detected += rec["detected"]
        kept += len(rec["faces"])
        with_face += bool(rec["faces"])
        if not rec["faces"] and rec["dropped"]:
            photo_lost[max(rec["dropped"], key=lambda d: d.get("score", 0.0))["reason"]] += 1
        words = crop_tags(rec["queries"])
        labels = sorted({q["class"] for q in rec["queries"]})
        for face in rec["faces"]:
            if words:
                tags.append([face["crop"], ";".join(words)])
            per_class.update(labels if len(labels) == 1 else ["(several classes)" if labels else "(unlabelled)"])
            for hit in rec["hits"][:1]:
                credits.append([face["crop"], hit["source"], hit["id"], hit["photographer"], hit["page_url"]])
                credits[-1].append(hit["licence_url"])
    n = len(keys)
    report = {
        "photos": n,
        "photos_with_a_face": with_face,
        "faces_detected": detected,
        "faces_kept": kept,
        "faces_per_photo": round(kept / n, 4) if n else 0.0,
        "detected_per_photo": round(detected / n, 4) if n else 0.0,
        "dropped": dict(sorted(dropped.items())),
        "photos_without_a_face_by_reason": dict(sorted(photo_lost.items())),
        "kept_per_class": dict(sorted(per_class.items())),
        "options": state["options"],
    }
    if classes:
        atomic_write_text(out / "rules.toml", rules_toml(classes))
    if len(tags) > 1:
        atomic_write_text(out / "tags.csv", _csv(tags))
    if len(credits) > 1:
        atomic_write_text(out / "credits.csv", _csv(credits))
    atomic_write_text(out / "report.json", json.dumps(report, indent=1) + "\n")
    return report
