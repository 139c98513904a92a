"""Where the videos of a run are analysed: a local process pool (default) or Ray tasks, one task per video or per
segment of a long video.

Both run :func:`ferkit.corpus.worker.analyse_video` on the same jobs, so their parts are identical. A failed
task is retried (up to ``retries`` more attempts when the failure was not bad input) and never stops the others;
a worker process that dies (killed, out of memory) fails only the tasks it was running.
"""

from __future__ import annotations

import contextlib
import logging
import queue as queue_mod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ferkit.corpus.jobs import VideoJob, VideoResult
from ferkit.corpus.worker import analyse_video
from ferkit.errors import InputError

ENGINES = ("local", "ray")
RAY_MISSING = "--engine ray needs Ray, which is not installed: pip install 'ferkit[ray]'"


@dataclass
class Callbacks:
    """What an engine reports: in-task progress (task name, seconds of it done) and each attempt's result."""

    progress: Callable[[str, float], None]
    result: Callable[[VideoResult, int, bool], None]  # (result, attempt number, final: no retry follows)


def _settle(r: VideoResult, job: VideoJob, attempts: dict[str, int], retries: int, cb: Callbacks) -> bool:
    """Count an attempt and report it; True when the task is to be tried again."""
    attempts[job.task] += 1
    again = not r.ok and r.retryable and attempts[job.task] <= retries
    cb.result(r, attempts[job.task], not again)
    return again


def _died(job: VideoJob, why: str) -> VideoResult:
    label = job.segment.label if job.segment else None
    return VideoResult(job.video.video_id, ok=False, error=why, retryable=True, segment=label)


def run_local(jobs: list[VideoJob], workers: int, retries: int, cb: Callbacks) -> None:
    """Analyse ``jobs`` on ``workers`` spawned processes, at most ``workers`` tasks at a time."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # the parent holds onnxruntime and decoder threads: never fork it
    pending, attempts = deque(jobs), {j.task: 0 for j in jobs}
    with ctx.Manager() as manager:
        q = manager.Queue()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        running: dict[Future[VideoResult], VideoJob] = {}
        try:
            while pending or running:
                while pending and len(running) < workers:
                    job = pending.popleft()
                    running[pool.submit(analyse_video, job, q)] = job
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(q, cb)
                broken = False
                for fut in done:
                    job = running.pop(fut)
                    try:
                        r = fut.result()
                    except BrokenProcessPool:
                        r, broken = _died(job, "its worker process died (killed or out of memory)"), True
                    if _settle(r, job, attempts, retries, cb):
                        pending.appendleft(job)
                if broken:  # every task that pool was running has failed above; a fresh pool takes the rest
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _drain(q, cb: Callbacks) -> None:
    with contextlib.suppress(queue_mod.Empty, EOFError, OSError):
        while True:
            task, seconds = q.get_nowait()
            cb.progress(task, seconds)


def import_ray():
    """The ``ray`` module, or the one-line ``InputError`` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(RAY_MISSING) from None
    return ray


def run_ray(jobs: list[VideoJob], workers: int, retries: int, cb: Callbacks, address: str | None = None) -> None:
    """Analyse ``jobs`` as Ray tasks (one per job, one CPU each): on the cluster at ``address`` (``auto``: the
    running one), else on a local Ray with ``workers`` CPUs. Worker processes are reused, so each loads the models
    once. The run folder must be on storage every node sees."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        kw = {"address": address} if address else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kw)
    try:
        task = ray.remote(num_cpus=1, max_retries=retries)(analyse_video)  # max_retries: a dead worker process
        attempts = {j.task: 0 for j in jobs}
        refs = {task.remote(job): job for job in jobs}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in done:
                job = refs.pop(ref)
                try:
                    r = ray.get(ref)
                except ray.exceptions.RayError as e:
                    r = _died(job, f"Ray task failed: {type(e).__name__}")
                if _settle(r, job, attempts, retries, cb):
                    refs[task.remote(job)] = job
    finally:
        if started:
            ray.shutdown()
