"""Labelling a queue: hand out faces to browser tabs (short leases, so two tabs never show the same face), store a
label the moment it is given, skip, and undo from the event log. Every change is one SQLite transaction."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from ferkit.curation.queue import Queue, check_face_id, face_row
from ferkit.errors import InputError
from ferkit.labels.taxonomy import Taxonomy

LEASE_SECONDS = 120.0
MAX_NOTE = 2000
TAB_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


class LabelError(InputError):
    """A label request the queue refuses (unknown face, label outside the taxonomy, bad tab id)."""


def check_tab(tab: str) -> str:
    if not isinstance(tab, str) or not 1 <= len(tab) <= 64 or not set(tab) <= TAB_CHARS:
        raise LabelError("tab id must be 1-64 characters of a-z, 0-9 and -")
    return tab


def check_label(label: str, taxonomy: Taxonomy) -> str:
    """``label`` when it is one of the taxonomy's classes (as given: no alias mapping), else ``LabelError``."""
    if label not in taxonomy.classes:
        raise LabelError(f"label {str(label)[:40]!r} is not in taxonomy {taxonomy.name!r}")
    return label


def _reason_filter(reason: str | None) -> tuple[str, list[Any]]:
    if not reason:
        return "", []
    return " AND EXISTS (SELECT 1 FROM json_each(f.reasons) WHERE value = ?)", [reason]


def next_faces(q: Queue, tab: str, reason: str | None = None, n: int = 1) -> list[dict[str, Any]]:
    """Up to ``n`` unlabelled faces for ``tab`` (highest priority first, skipped ones last), leased to it."""
    check_tab(tab)
    n = max(1, min(int(n), 50))
    now = time.time()
    extra, params = _reason_filter(reason)
    with q.transaction() as c:
        # extra is one of two fixed strings (see _reason_filter); every value is a parameter
        sql = (
            "SELECT f.* FROM faces f WHERE f.id NOT IN (SELECT face_id FROM labels) "  # noqa: S608
            f"AND (f.lease_until < ? OR f.lease_tab = ?){extra} ORDER BY f.skipped, f.priority DESC, f.id LIMIT ?"
        )
        rows = c.execute(sql, [now, tab, *params, n]).fetchall()
        c.executemany(
            "UPDATE faces SET lease_tab=?, lease_until=? WHERE id=?",
            [(tab, now + LEASE_SECONDS, r["id"]) for r in rows],
        )
    return [face_row(r) for r in rows]


def _face_exists(c, face_id: str) -> None:
    if not c.execute("SELECT 1 FROM faces WHERE id=?", (check_face_id(face_id),)).fetchone():
        raise LabelError(f"no face {face_id} in this queue")


def set_label(q: Queue, face_id: str, label: str, tab: str, taxonomy: Taxonomy, note: str = "") -> int:
    """Store ``label`` (and ``note``) for a face now; returns the event id. Labelling a face again replaces its label
    (the event log keeps the old one, for undo)."""
    check_tab(tab)
    check_label(label, taxonomy)
    note = str(note or "")[:MAX_NOTE]
    with q.transaction() as c:
        _face_exists(c, face_id)
        old = c.execute("SELECT label, note, event FROM labels WHERE face_id=?", (face_id,)).fetchone()
        previous = json.dumps(dict(old)) if old else None
        now = time.time()
        ev = c.execute(
            "INSERT INTO events(face_id, tab, action, label, note, previous, at) VALUES (?, ?, 'label', ?, ?, ?, ?)",
            (face_id, tab, label, note, previous, now),
        ).lastrowid
        c.execute(
            "INSERT INTO labels(face_id, label, note, tab, event, at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(face_id) DO UPDATE SET label=excluded.label, note=excluded.note, tab=excluded.tab, "
            "event=excluded.event, at=excluded.at",
            (face_id, label, note, tab, ev, now),
        )
        c.execute("UPDATE faces SET lease_until=0 WHERE id=?", (face_id,))
    return int(ev or 0)


def skip(q: Queue, face_id: str, tab: str) -> int:
    """Put a face back at the end of the queue; returns the event id."""
    check_tab(tab)
    with q.transaction() as c:
        _face_exists(c, face_id)
        ev = c.execute(
            "INSERT INTO events(face_id, tab, action, at) VALUES (?, ?, 'skip', ?)", (face_id, tab, time.time())
        ).lastrowid
        c.execute("UPDATE faces SET skipped=skipped+1, lease_until=0 WHERE id=?", (face_id,))
    return int(ev or 0)


def undo(q: Queue, tab: str) -> str | None:
    """Undo ``tab``'s last label or skip (the label before it comes back); returns the face id, or None."""
    check_tab(tab)
    with q.transaction() as c:
        ev = c.execute(
            "SELECT * FROM events WHERE tab=? AND undone=0 AND action IN ('label', 'skip') ORDER BY id DESC LIMIT 1",
            (tab,),
        ).fetchone()
        if ev is None:
            return None
        c.execute("UPDATE events SET undone=1 WHERE id=?", (ev["id"],))
        fid = ev["face_id"]
        if ev["action"] == "skip":
            c.execute("UPDATE faces SET skipped=MAX(0, skipped-1) WHERE id=?", (fid,))
        else:
            current = c.execute("SELECT event FROM labels WHERE face_id=?", (fid,)).fetchone()
            if current is not None and current["event"] == ev["id"]:  # another tab's later label stays
                if ev["previous"]:
                    prev = json.loads(ev["previous"])
                    c.execute(
                        "UPDATE labels SET label=?, note=?, event=? WHERE face_id=?",
                        (prev["label"], prev["note"], prev["event"], fid),
                    )
                else:
                    c.execute("DELETE FROM labels WHERE face_id=?", (fid,))
        c.execute("UPDATE faces SET lease_tab=?, lease_until=? WHERE id=?", (tab, time.time() + LEASE_SECONDS, fid))
    return fid


@dataclass
class Progress:
    total: int
    labelled: int
    by_label: dict[str, int]
    by_reason: dict[str, int]


def progress(q: Queue, reason: str | None = None) -> Progress:
    """How far labelling is (of all faces, or of those with ``reason``)."""
    extra, params = _reason_filter(reason)
    total = q.query(f"SELECT COUNT(*) FROM faces f WHERE 1=1{extra}", params)[0][0]  # noqa: S608
    labelled = q.query(
        f"SELECT COUNT(*) FROM faces f JOIN labels l ON l.face_id = f.id WHERE 1=1{extra}",  # noqa: S608
        params,
    )[0][0]
    by_label = {r[0]: r[1] for r in q.query("SELECT label, COUNT(*) FROM labels GROUP BY label ORDER BY 2 DESC")}
    reasons = "SELECT j.value, COUNT(*) FROM faces, json_each(faces.reasons) j GROUP BY j.value ORDER BY 2 DESC"
    by_reason = {r[0]: r[1] for r in q.query(reasons)}
    return Progress(int(total), int(labelled), by_label, by_reason)
