"""One video of a collection, in a worker process (local pool or Ray task): analyse it into its work file with exact
resume (``ferkit.api.run_analysis``), then write its Parquet part atomically and drop the work file.

The models are loaded once per worker process and kept for every later video with the same settings.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from ferkit.analysis.checkpoint import state_path
from ferkit.analysis.setup import ANALYSIS_THREADS, ModelSetup
from ferkit.corpus.jobs import RunSpec, VideoJob, VideoResult
from ferkit.errors import FerkitError, InputError
from ferkit.media.files import OutputLock
from ferkit.models.base import EmotionModel

_MODELS: dict[tuple[tuple[str, ...], bool], list[EmotionModel]] = {}


def worker_models(spec: RunSpec) -> list[EmotionModel]:
    """The run's models, loaded on the first video a worker process sees and kept for the next ones."""
    from ferkit.models.loading import load_model

    key = (spec.models, spec.calibration)
    if key not in _MODELS:
        _MODELS[key] = [load_model(m, ANALYSIS_THREADS, spec.calibration) for m in spec.models]
    return _MODELS[key]


def analyse_video(job: VideoJob, report: Callable[[str, float], None] | Any = None) -> VideoResult:
    """Analyse one video into its Parquet part; never raises (a failure is a result with ``error``).

    ``report(video_id, seconds_of_video_done)`` (or a queue to ``put`` those pairs on) is called about once a
    second. A work file left by a killed run is continued from its last checkpoint, so the part holds exactly the
    rows of an uninterrupted run.
    """
    from ferkit.api import run_analysis
    from ferkit.corpus.parts import write_part

    start = time.monotonic()
    result = VideoResult(job.video.video_id, ok=False, worker=os.getpid())
    last = [start]

    def progress(rec: Any) -> None:
        now = time.monotonic()
        if report is not None and now - last[0] >= 1.0 and rec.timestamp is not None:
            last[0] = now
            send = report.put if hasattr(report, "put") else report
            send((job.video.video_id, float(rec.timestamp)))

    try:
        models = worker_models(job.spec)
        setup = ModelSetup(models, calibration=job.spec.calibration)
        with OutputLock(job.work):  # a worker orphaned by a killed run may still be finishing this video
            result.resumed = job.work.exists() and job.work.stat().st_size > 0
            summary = run_analysis(
                [job.video.file],
                job.work,
                "jsonl",
                setup,
                job.spec.options(),
                resume=True,
                plots=False,
                progress=progress,
            )
            result.rows, result.faces = write_part(job, [m.name for m in models], list(models[0].classes))
            for p in (job.work, state_path(job.work)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        result.warnings = list(summary.warnings)
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
