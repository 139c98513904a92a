"""The mining queue: ``DIR/queue.sqlite`` (WAL) indexing the kept faces (``DIR/crops``, ``DIR/context``), the
sources mined, and the labels given in the browser, with an event log for undo.

Every path and id a caller passes in is validated here: face ids are hex digests, asset paths are built from them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferkit.errors import InputError

SCHEMA_VERSION = 1
DB_NAME = "queue.sqlite"
FACE_ID = re.compile(r"^[0-9a-f]{16}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    key TEXT PRIMARY KEY, path TEXT NOT NULL, settings TEXT NOT NULL, status TEXT NOT NULL,
    faces INTEGER NOT NULL DEFAULT 0, candidates INTEGER NOT NULL DEFAULT 0, seconds REAL,
    dropped TEXT NOT NULL DEFAULT '{}', checkpoint TEXT, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS faces(
    id TEXT PRIMARY KEY, source_key TEXT NOT NULL, source TEXT NOT NULL, frame_index INTEGER NOT NULL,
    timestamp REAL, track INTEGER, box TEXT NOT NULL, emotion TEXT, confidence REAL, entropy REAL,
    probabilities TEXT, models TEXT, aus TEXT, speaking REAL, speech_action INTEGER, hard_case_rules TEXT,
    reasons TEXT NOT NULL, priority REAL NOT NULL, phash TEXT, blur REAL, yaw REAL, added REAL NOT NULL,
    skipped INTEGER NOT NULL DEFAULT 0, lease_tab TEXT, lease_until REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS faces_source ON faces(source_key, priority);
CREATE TABLE IF NOT EXISTS labels(
    face_id TEXT PRIMARY KEY REFERENCES faces(id), label TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    tab TEXT NOT NULL DEFAULT '', event INTEGER NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY AUTOINCREMENT, face_id TEXT NOT NULL, tab TEXT NOT NULL, action TEXT NOT NULL,
    label TEXT, note TEXT, previous TEXT, undone INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL);
"""

#: Columns of ``faces`` holding JSON.
JSON_COLUMNS = ("box", "probabilities", "models", "aus", "hard_case_rules", "reasons")


@dataclass
class QueuedFace:
    """One face to store (see :meth:`Queue.add_face`); JSON-able fields as Python values."""

    id: str
    source_key: str
    source: str
    frame_index: int
    timestamp: float | None
    track: int | None
    box: list[float]
    emotion: str | None
    confidence: float | None
    entropy: float | None
    probabilities: dict[str, float] | None
    models: dict[str, Any] | None
    aus: dict[str, float] | None
    speaking: float | None
    speech_action: bool | None
    hard_case_rules: list[str] | None
    reasons: list[str]
    priority: float
    phash: str | None
    blur: float | None
    yaw: float | None


def face_row(row: sqlite3.Row) -> dict[str, Any]:
    """A ``faces`` row as a dict with its JSON columns parsed."""
    out = dict(row)
    for k in JSON_COLUMNS:
        if k in out and out[k] is not None:
            out[k] = json.loads(out[k])
    return out


def check_face_id(face_id: str) -> str:
    """``face_id`` when it is a queue id (16 hex digits), else ``InputError`` (refuses any path-like value)."""
    if not isinstance(face_id, str) or not FACE_ID.match(face_id):
        raise InputError(f"not a face id: {str(face_id)[:40]!r}")
    return face_id


class Queue:
    """A mining queue folder. ``Queue(dir, create=True)`` makes it; otherwise it must exist and be a queue.

    A corrupt database or one written by a newer ferkit is an ``InputError`` before anything is written. One
    connection per object, serialised by a lock (the web server's threads share it); WAL lets a second process read.
    """

    def __init__(self, folder: Path | str, create: bool = False) -> None:
        self.dir = Path(folder)
        self.db_path = self.dir / DB_NAME
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError(f"{self.dir}: queue folder is a file, not a folder")
        if not create and not self.db_path.is_file():
            raise InputError(f"{self.dir}: not a mining queue (no {DB_NAME}; make one with `ferkit mine`)")
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self._check_version(create)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if create:
                self.conn.executescript(_SCHEMA)
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as e:
            raise InputError(f"{self.db_path}: corrupt queue database ({e})") from None
        (self.dir / "crops").mkdir(exist_ok=True) if create else None
        (self.dir / "context").mkdir(exist_ok=True) if create else None

    def _check_version(self, create: bool) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            if tables or not create:
                raise InputError(f"{self.db_path}: not a ferkit queue database (no meta table)")
            return
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            version = int(row[0]) if row else None
        except ValueError:
            version = None
        if version is None:
            raise InputError(f"{self.db_path}: queue database has no valid schema version")
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.db_path}: queue schema version {version} is newer than this ferkit's ({SCHEMA_VERSION}); "
                "upgrade ferkit"
            )

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error) under the object's lock."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    # --- assets -------------------------------------------------------------------------------------------------

    def crop_path(self, face_id: str) -> Path:
        return self.dir / "crops" / f"{check_face_id(face_id)}.png"

    def context_path(self, face_id: str) -> Path:
        return self.dir / "context" / f"{check_face_id(face_id)}.jpg"

    # --- sources (resume) ---------------------------------------------------------------------------------------

    def source_done(self, key: str, settings: str) -> bool:
        row = self.query("SELECT status, settings FROM sources WHERE key=?", (key,))
        return bool(row) and row[0]["status"] == "done" and row[0]["settings"] == settings

    def checkpoint(self, key: str, settings: str) -> dict[str, Any] | None:
        """The checkpoint a run that stopped part-way through this source left with these settings (None: none)."""
        row = self.query("SELECT status, settings, checkpoint FROM sources WHERE key=?", (key,))
        if not row or row[0]["status"] != "running" or row[0]["settings"] != settings or not row[0]["checkpoint"]:
            return None
        try:
            state = json.loads(row[0]["checkpoint"])
        except ValueError:
            return None
        return state if isinstance(state, dict) else None

    def save_checkpoint(self, key: str, state: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("UPDATE sources SET checkpoint=?, updated=? WHERE key=?", (json.dumps(state), time.time(), key))

    def start_source(self, key: str, path: str, settings: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO sources(key, path, settings, status, updated) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT(key) DO UPDATE SET checkpoint=CASE WHEN settings=excluded.settings THEN checkpoint END, "
                "settings=excluded.settings, status='running', updated=excluded.updated",
                (key, path, settings, time.time()),
            )

    def finish_source(
        self, key: str, faces: int, candidates: int, seconds: float | None, dropped: dict[str, int]
    ) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE sources SET status='done', faces=?, candidates=?, seconds=?, dropped=?, checkpoint=NULL, "
                "updated=? WHERE key=?",
                (faces, candidates, seconds, json.dumps(dropped, sort_keys=True), time.time(), key),
            )

    # --- faces --------------------------------------------------------------------------------------------------

    def has_face(self, face_id: str) -> bool:
        return bool(self.query("SELECT 1 FROM faces WHERE id=?", (face_id,)))

    def add_face(self, face: QueuedFace, cap: int | None = None) -> tuple[str, str | None]:
        """Insert ``face`` unless already there; with ``cap``, a source holding ``cap`` faces gives up its lowest
        priority unlabelled face for a higher one. Returns (``added``, ``exists`` or ``capped``; the id of the face
        evicted for it or None).
        The caller writes the face's images first (a kill between leaves files a rerun rewrites, never a row
        without its images) and deletes the evicted face's images after."""
        row = {k: v for k, v in face.__dict__.items()}
        for k in JSON_COLUMNS:
            row[k] = None if row[k] is None else json.dumps(row[k], sort_keys=True)
        row["speech_action"] = None if face.speech_action is None else int(face.speech_action)
        row["added"] = time.time()
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM faces WHERE id=?", (face.id,)).fetchone():
                return "exists", None
            evicted = None
            if cap is not None:
                n = c.execute("SELECT COUNT(*) FROM faces WHERE source_key=?", (face.source_key,)).fetchone()[0]
                if n >= cap:
                    low = c.execute(
                        "SELECT id, priority FROM faces WHERE source_key=? AND id NOT IN (SELECT face_id FROM labels) "
                        "ORDER BY priority, id DESC LIMIT 1",
                        (face.source_key,),
                    ).fetchone()
                    if low is None or (low["priority"], face.id) >= (face.priority, low["id"]):
                        return "capped", None
                    c.execute("DELETE FROM faces WHERE id=?", (low["id"],))
                    evicted = low["id"]
            cols = ", ".join(row)
            c.execute(f"INSERT INTO faces({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))  # noqa: S608
            return "added", evicted

    def face(self, face_id: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM faces WHERE id=?", (check_face_id(face_id),))
        return face_row(rows[0]) if rows else None

    def count(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM faces")[0][0])
