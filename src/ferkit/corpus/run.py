"""``ferkit corpus run``: plan the videos of a manifest, skip the finished ones, run the rest on an engine, log it.

A run folder holds ``corpus.json`` (the settings every part was made with: another run with other settings into
the same folder is refused, never mixed), ``records/<video_id>.parquet`` (the parts), ``run_log.jsonl`` (one line
per event) and ``.work/`` (work files of unfinished videos and segments, segments' parts, packet indexes and a cache
of content hashes). A part is finished when it is stamped with the key of this run's settings and its video's
content (SHA-256; see :mod:`ferkit.corpus.planning`), so a rerun over a finished collection only hashes what
changed and returns; a killed video or segment continues from its work file's last checkpoint, and a long video's
part is made from its segments' parts as soon as the last one is finished.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ferkit.corpus.engines import Callbacks, run_local, run_ray
from ferkit.corpus.jobs import RunSpec, VideoJob, VideoResult
from ferkit.corpus.manifest import load_manifest
from ferkit.corpus.parts import RECORDS, merge_segments
from ferkit.corpus.planning import WORK, VideoPlan, plan
from ferkit.errors import InputError
from ferkit.media.files import OutputLock, atomic_write_text, check_out_dir, read_json_file

SETTINGS_FILE, LOG_FILE = "corpus.json", "run_log.jsonl"
VERSION = 1


@dataclass
class RunEvents:
    """Callbacks of a run: the tasks planned (with their total seconds of video), in-task progress, results."""

    planned: Callable[[list[VideoJob], float], None] = lambda jobs, seconds: None
    progress: Callable[[str, float], None] = lambda task, seconds: None
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
    spec.options()  # bad sampling, detector or segment values fail here
    spec.segmenting()
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
        plans = plan(manifest, out, spec, settings, log, summary)
        jobs = [j for p in plans for j in p.todo]
        events.planned(jobs, sum(j.seconds for j in jobs))
        results = _Results(plans, summary, log, events)
        for p in plans:
            if p.segments and not p.todo:  # every segment finished by an earlier run, which stopped before merging
                results.merge(p)
        cb = Callbacks(events.progress, results)
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


class _Results:
    """Takes each task's results: logs them, counts finished videos and makes a long video's part from its
    segments' parts once the last one is finished."""

    def __init__(self, plans: list[VideoPlan], summary: RunSummary, log: RunLog, events: RunEvents) -> None:
        self.plans = {p.job.video.video_id: p for p in plans}
        self.left = {p.job.video.video_id: len(p.todo) for p in plans}
        self.summary, self.log, self.events = summary, log, events

    def __call__(self, r: VideoResult, attempt: int, final: bool) -> None:
        fields = {k: v for k, v in r.__dict__.items() if k not in ("video_id", "ok") and (k != "segment" or v)}
        event = "done" if r.ok else ("failed" if final else "retry")
        self.log.write(event, video_id=r.video_id, attempt=attempt, **fields)
        p = self.plans[r.video_id]
        if r.ok and not p.segments:
            self._finished(p, r.rows, r.faces)
        elif r.ok:
            self.left[r.video_id] -= 1
            if self.left[r.video_id] == 0:
                self.merge(p)
        elif final and all(v != r.video_id for v, _ in self.summary.failed):  # a video fails once
            self.summary.failed.append((r.video_id, f"segment {r.segment}: {r.error}" if r.segment else r.error or ""))
        self.events.result(r, attempt, final)

    def merge(self, p: VideoPlan) -> None:
        """The video's part from its segments' parts; they and the packet index are removed after."""
        vid = p.job.video.video_id
        if any(v == vid for v, _ in self.summary.failed):
            return
        try:
            rows, faces = merge_segments(p.job, p.segments)
        except Exception as e:  # a segment's part damaged meanwhile: the next run makes it again
            self.summary.failed.append((vid, f"merging its segments failed ({type(e).__name__}: {e})"))
            self.log.write("failed", video_id=vid, error=self.summary.failed[-1][1], attempt=0)
            return
        self.log.write("merged", video_id=vid, segments=len(p.segments), rows=rows, faces=faces)
        for f in [s.part for s in p.segments] + [p.segments[0].segment.index_file]:  # type: ignore[union-attr]
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        self._finished(p, rows, faces)

    def _finished(self, p: VideoPlan, rows: int, faces: int) -> None:
        s = self.summary
        s.done.append(p.job.video.video_id)
        s.rows, s.faces, s.video_seconds = s.rows + rows, s.faces + faces, s.video_seconds + (p.job.duration or 0.0)
