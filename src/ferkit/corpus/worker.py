"""One video (or one segment of a long video) of a collection, in a worker process (local pool or Ray task): analyse
it with exact resume, then write its Parquet part atomically.

The models, the detector and the analyzer are made once per worker process and kept for every later task with the
same settings. Records stay in memory until the first resume checkpoint (``--checkpoint-every`` seconds of work):
only then are they appended to the work file (``.work/<video_id>-<key>.jsonl``) beside the checkpoint, so a video
done before its first checkpoint writes nothing but its part — a killed one would start again anyway, since
records after the last checkpoint are never kept. A segment reads only its own frames (a seek to its first
sample) with the video's packet index, computed once and cached beside the work files.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferkit.analysis.checkpoint import state_path
from ferkit.analysis.setup import ANALYSIS_THREADS, ModelSetup
from ferkit.corpus.jobs import RunSpec, VideoJob, VideoResult
from ferkit.errors import FerkitError, InputError
from ferkit.media.files import OutputLock
from ferkit.models.base import EmotionModel

if TYPE_CHECKING:
    from ferkit.analysis.pipeline import Analyzer
    from ferkit.media.video import FrameWindow

_MODELS: dict[tuple[tuple[str, ...], bool], list[EmotionModel]] = {}
_ANALYZERS: dict[RunSpec, Analyzer] = {}


def worker_models(spec: RunSpec) -> list[EmotionModel]:
    """The run's models, loaded on the first video a worker process sees and kept for the next ones."""
    from ferkit.models.loading import load_model

    key = (spec.models, spec.calibration)
    if key not in _MODELS:
        _MODELS[key] = [load_model(m, ANALYSIS_THREADS, spec.calibration) for m in spec.models]
    return _MODELS[key]


def worker_analyzer(spec: RunSpec) -> Analyzer:
    """The run's analyzer (models, detector sessions), made on the first task a worker process sees and kept."""
    from ferkit.analysis.setup import make_analyzer

    if spec not in _ANALYZERS:
        _ANALYZERS[spec] = make_analyzer(ModelSetup(worker_models(spec), calibration=spec.calibration), spec.options())
    return _ANALYZERS[spec]


def _window(job: VideoJob) -> FrameWindow | None:
    """A segment's frames with the video's packet index (read from its cache file, or computed and cached)."""
    import numpy as np

    from ferkit.media.files import atomic_write_bytes
    from ferkit.media.video import FrameWindow, PacketIndex, packet_index

    s = job.segment
    if s is None:
        return None
    index = None
    with contextlib.suppress(Exception):  # missing, cut or foreign: made again
        with np.load(s.index_file) as z:
            index = PacketIndex(z["pts"].tolist(), z["keys"].tolist())
    if index is None:
        index = packet_index(job.video.file)
        buf = _npz(pts=np.array(index.pts, np.int64), keys=np.array(index.keys, np.int64))
        atomic_write_bytes(s.index_file, buf)
    return FrameWindow(s.start, s.stop, index)


def _npz(**arrays: Any) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _record_lines(job: VideoJob, analyzer: Analyzer, progress: Callable[[Any], None]) -> list[str]:
    """The job's records as JSON lines (as ``ferkit analyze`` writes them), continuing its work file from the last
    checkpoint when a killed run left one (the rest is analysed again: the lines are those of an uninterrupted
    run)."""
    from ferkit.analysis.checkpoint import StateFile, run_settings
    from ferkit.analysis.records import RecordWriter
    from ferkit.analysis.resume import resume_from

    state = StateFile(job.work, run_settings(analyzer))
    cp = state.check()
    cp = cp if cp is None or analyzer.state_fits(cp.state) else None
    writer = RecordWriter(job.work, "jsonl", analyzer.classes, append=True)
    done, states = resume_from(writer, analyzer.name, [job.video.file], cp)
    kept = job.work.read_text().splitlines() if job.work.exists() else []
    pending: list[str] = []

    def checkpoint(source: Path, frame_index: int, st: dict) -> None:
        with open(job.work, "a", encoding="utf-8") as fh:  # the records up to the checkpoint frame, then it
            fh.write("".join(line + "\n" for line in pending))
        kept.extend(pending)
        pending.clear()
        state.save(source, frame_index, st)

    analyzer.checkpoint = checkpoint
    analyzer.warnings.clear()
    for rec in analyzer.iter_records([job.video.file], [job.video.file], done, states):
        pending.append(json.dumps(rec.to_dict()))
        progress(rec)
    return kept + pending


def analyse_video(job: VideoJob, report: Callable[[str, float], None] | Any = None) -> VideoResult:
    """Analyse one video (or segment) into its Parquet part; never raises (a failure is a result with ``error``).

    ``report(task, seconds_of_it_done)`` (or a queue to ``put`` those pairs on) is called about once a second. A
    work file left by a killed run is continued from its last checkpoint, so the part holds exactly the rows of an
    uninterrupted run. The result's ``seconds`` leave out the worker's setup (``setup_s``, on its first task).
    """
    from ferkit.corpus.parts import write_part
    from ferkit.media.video import frame_window

    start = time.monotonic()
    label = job.segment.label if job.segment else None
    result = VideoResult(job.video.video_id, ok=False, worker=os.getpid(), segment=label)
    last = [start]
    offset = job.segment.start_s if job.segment else 0.0

    def progress(rec: Any) -> None:
        now = time.monotonic()
        if report is not None and now - last[0] >= 1.0 and rec.timestamp is not None:
            last[0] = now
            send = report.put if hasattr(report, "put") else report
            send((job.task, max(0.0, float(rec.timestamp) - offset)))

    try:
        if job.spec not in _ANALYZERS:  # the worker's first task: imports, models, detector (not in its seconds)
            worker_analyzer(job.spec)
            result.setup_s = round(time.monotonic() - start, 3)
            start = last[0] = time.monotonic()
        analyzer = worker_analyzer(job.spec)
        with OutputLock(job.work):  # a worker orphaned by a killed run may still be finishing this video
            result.resumed = job.work.exists() and job.work.stat().st_size > 0
            with frame_window(_window(job)):
                lines = _record_lines(job, analyzer, progress)
            names, rows = [m.name for m in analyzer.models], [json.loads(line) for line in lines]
            result.rows, result.faces = write_part(job, names, list(analyzer.classes), rows)
            for p in (job.work, state_path(job.work)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        result.warnings = list(analyzer.warnings)
        result.ok = True
    except FerkitError as e:
        result.error = str(e)
        result.retryable = not isinstance(e, InputError)
    except Exception as e:  # one video's bug or resource failure must not stop the collection
        result.error = f"{type(e).__name__}: {e}"
        result.retryable = True
    result.seconds = round(time.monotonic() - start, 3)
    result.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    return result
