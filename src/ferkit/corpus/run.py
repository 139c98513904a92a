"""``ferkit corpus run``: plan the videos of a manifest, skip the finished ones, run the rest on an engine, log it.

A run folder holds ``corpus.json`` (the settings every part was made with: another run with other settings into
the same folder is refused, never mixed), ``records/<video_id>.parquet`` (the parts), ``run_log.jsonl`` (one line
per event) and ``.work/`` (work files of unfinished videos and a cache of content hashes). A part is finished when
it is stamped with the key of this run's settings and its video's content (SHA-256), so a rerun over a finished
collection only hashes what changed and returns; a killed video continues from its work file's last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ferkit.corpus.engines import Callbacks, run_local, run_ray
from ferkit.corpus.jobs import RunSpec, VideoJob, VideoResult
from ferkit.corpus.manifest import Manifest, load_manifest
from ferkit.corpus.parts import RECORDS, arrow_type, part_meta, relabel_part, row_stamp
from ferkit.errors import InputError
from ferkit.media.files import OutputLock, atomic_write_text, check_out_dir, read_json_file, source_identity

SETTINGS_FILE, LOG_FILE, WORK = "corpus.json", "run_log.jsonl", ".work"
VERSION = 1


@dataclass
class RunEvents:
    """Callbacks of a run: the jobs planned (with their total seconds of video), in-video progress, results."""

    planned: Callable[[list[VideoJob], float], None] = lambda jobs, seconds: None
    progress: Callable[[str, float], None] = lambda video_id, seconds: None
    result: Callable[[VideoResult, int, bool], None] = lambda result, attempt, final: None


@dataclass
class RunSummary:
    """What a run did."""

    out: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished by an earlier run with the same settings
    failed: list[tuple[str, str]] = field(default_factory=list)  # (video_id, error)
    rows: int = 0
    faces: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0  # runtime of the videos analysed by this run


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunLog:
    """``run_log.jsonl``: appended one JSON line per event (a killed run leaves at most a cut last line)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **fields: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": _now(), "event": event, **fields}) + "\n")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Content hashes of the videos by resolved path, size and mtime (``.work/hashes.json``): a rerun hashes only
    the files that changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        doc = read_json_file(path, "hash cache", 64 << 20) if path.is_file() else {}
        self.entries: dict[str, Any] = doc if isinstance(doc, dict) else {}
        self.changed = False

    def sha256(self, file: Path) -> str:
        ident = source_identity(file)
        stamp = [ident["size"], ident["mtime_ns"]]
        hit = self.entries.get(str(ident["path"]))
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp and isinstance(hit[1], str):
            return hit[1]
        digest = _sha256(file)
        self.entries[str(ident["path"])] = [stamp, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.changed:
            atomic_write_text(self.path, json.dumps(self.entries))


def run_settings_of(spec: RunSpec) -> tuple[dict[str, Any], list[str]]:
    """Everything the records depend on (models' weights and calibration, sampling, detector, tracking,
    smoothing: :func:`ferkit.analysis.checkpoint.run_settings`) and the class list; loads the models once here,
    so a bad ``--model`` fails before any work."""
    from ferkit.analysis.checkpoint import run_settings
    from ferkit.analysis.setup import make_analyzer
    from ferkit.corpus.worker import worker_models

    analyzer = make_analyzer(worker_models(spec), spec.options())
    return run_settings(analyzer), list(analyzer.classes)


def _check_settings(out: Path, doc: dict[str, Any]) -> None:
    """Refuse a folder holding a run with other settings (or something else named corpus.json)."""
    path = out / SETTINGS_FILE
    if not path.exists():
        return
    old = read_json_file(path, "corpus run settings", 1 << 20)
    if not isinstance(old, dict) or old.get("version") != VERSION or not isinstance(old.get("settings"), dict):
        raise InputError(f"{path}: not a ferkit corpus run file; choose another --out")
    written, now = json.loads(json.dumps(old["settings"])), json.loads(json.dumps(doc["settings"]))
    for key in sorted(set(written) | set(now)):
        if written.get(key) != now.get(key):
            raise InputError(
                f"{out}: holds a run with {key} = {written.get(key)!r}, this run has {now.get(key)!r}; "
                "runs with other settings are never mixed: choose another --out"
            )


def plan(manifest: Manifest, out: Path, spec: RunSpec, settings: dict[str, Any], log: RunLog, summary: RunSummary):
    """The jobs still to do; finished videos go to ``summary.skipped``, missing files to ``summary.failed``."""
    column_types = {c: arrow_type([v.columns.get(c) for v in manifest.videos]) for c in manifest.columns}
    hashes = HashCache(out / WORK / "hashes.json")
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    jobs = []
    for v in manifest.videos:
        if not v.file.is_file():
            summary.failed.append((v.video_id, f"{v.path}: no such video file"))
            log.write("failed", video_id=v.video_id, error=summary.failed[-1][1], attempt=0)
            continue
        try:
            digest = hashes.sha256(v.file)
        except OSError as e:
            summary.failed.append((v.video_id, f"{v.path}: cannot read ({e.strerror or e})"))
            log.write("failed", video_id=v.video_id, error=summary.failed[-1][1], attempt=0)
            continue
        key = hashlib.sha256(f"{settings_hash}:{digest}".encode()).hexdigest()
        part = out / RECORDS / f"{v.video_id}.parquet"
        job = VideoJob(v, key, digest, out / WORK / f"{v.video_id}-{key[:16]}.jsonl", part, spec, column_types)
        meta = part_meta(part)
        if meta is not None and meta.get("key") == key:
            if meta.get("row") != row_stamp(job):
                relabel_part(job)
            summary.skipped.append(v.video_id)
            continue
        mine = re.compile(rf"{re.escape(v.video_id)}-[0-9a-f]{{16}}\.jsonl.*")
        for stale in (out / WORK).glob(f"{v.video_id}-*.jsonl*"):  # work of this video's other content
            if mine.fullmatch(stale.name) and not stale.name.startswith(job.work.name):
                stale.unlink()
        jobs.append(job)
    hashes.save()
    return jobs


def corpus_run(
    manifest_path: Path,
    out: Path,
    spec: RunSpec,
    engine: str = "local",
    workers: int = 1,
    retries: int = 1,
    address: str | None = None,
    root: Path | None = None,
    events: RunEvents | None = None,
) -> RunSummary:
    """Analyse every video of the manifest into ``out`` (see the module doc); returns the summary."""
    events = events or RunEvents()
    if engine not in ("local", "ray"):
        raise InputError(f"--engine must be local or ray, got {engine!r}")
    if not 1 <= workers <= 256:
        raise InputError(f"--workers must be in [1, 256], got {workers}")
    if not 0 <= retries <= 10:
        raise InputError(f"--retries must be in [0, 10], got {retries}")
    if engine == "ray":
        from ferkit.corpus.engines import import_ray

        import_ray()  # a one-line error before any work when Ray is missing
    manifest = load_manifest(manifest_path, root)
    check_out_dir(out, "--out", inputs=[v.file for v in manifest.videos])
    spec.options()  # bad sampling or detector values fail here
    settings, classes = run_settings_of(spec)
    start = time.monotonic()
    summary = RunSummary(out)
    with OutputLock(out / SETTINGS_FILE):
        doc = {"version": VERSION, "settings": settings, "models": list(spec.models), "classes": classes}
        doc["sampling"] = spec.sampling()
        _check_settings(out, doc)
        (out / RECORDS).mkdir(parents=True, exist_ok=True)
        (out / WORK).mkdir(exist_ok=True)
        if not (out / SETTINGS_FILE).exists():
            atomic_write_text(out / SETTINGS_FILE, json.dumps(doc, indent=1))
        log = RunLog(out / LOG_FILE)
        log.write("start", manifest=str(manifest_path), videos=len(manifest.videos), engine=engine, workers=workers)
        jobs = plan(manifest, out, spec, settings, log, summary)
        lengths = _durations(jobs, summary, log)
        jobs = [j for j in jobs if j.video.video_id in lengths]
        events.planned(jobs, sum(lengths.values()))

        def result(r: VideoResult, attempt: int, final: bool) -> None:
            fields = {k: v for k, v in r.__dict__.items() if k not in ("video_id", "ok")}
            log.write(
                "done" if r.ok else ("failed" if final else "retry"), video_id=r.video_id, attempt=attempt, **fields
            )
            if r.ok:
                summary.done.append(r.video_id)
                summary.rows, summary.faces = summary.rows + r.rows, summary.faces + r.faces
                summary.video_seconds += lengths[r.video_id]
            elif final:
                summary.failed.append((r.video_id, r.error or "failed"))
            events.result(r, attempt, final)

        cb = Callbacks(events.progress, result)
        if jobs and engine == "ray":
            run_ray(jobs, workers, retries, cb, address)
        elif jobs:
            run_local(jobs, workers, retries, cb)
        summary.seconds = round(time.monotonic() - start, 3)
        log.write(
            "end",
            done=len(summary.done),
            skipped=len(summary.skipped),
            failed=len(summary.failed),
            seconds=summary.seconds,
        )
    return summary


def _durations(jobs: list[VideoJob], summary: RunSummary, log: RunLog) -> dict[str, float]:
    """Runtime in seconds of each job's video (from its header); a file that does not open as a video fails here
    with its one-line reason."""
    from ferkit.media.video import video_info

    out = {}
    for j in jobs:
        try:
            out[j.video.video_id] = video_info(j.video.file).duration or 0.0
        except InputError as e:
            summary.failed.append((j.video.video_id, str(e)))
            log.write("failed", video_id=j.video.video_id, error=str(e), attempt=0)
    return out
