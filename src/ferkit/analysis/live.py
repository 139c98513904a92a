"""``ferkit analyze --live``: the records of a live source, appended and flushed as they come, each with its latency.

The newest frame is taken whenever the analysis is ready for one (:class:`~ferkit.media.live.LiveSource`); stale
frames are dropped, so the delay stays bounded however slow the analysis is. Each taken frame goes through the
video pipeline's per-frame work (:meth:`~ferkit.analysis.pipeline.Analyzer.iter_live`: detector, tracker, models,
smoothing), and its records get ``latency_ms`` (capture to write) and ``dropped`` (stale frames skipped before it).
Live output cannot be resumed: a stream does not come back.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.analysis.pipeline import Analyzer
from ferkit.analysis.records import FaceRecord, RecordWriter, source_name
from ferkit.errors import InputError
from ferkit.media.images import image_frame
from ferkit.media.live import LiveFrame, LiveSource, stop_on_signals
from ferkit.media.samples import sample_image

#: Formats live records are written in: both can be read while they grow (Parquet is only written at the end).
LIVE_FORMATS = ("jsonl", "csv")


@dataclass
class LiveSummary:
    """What a live run processed, dropped and wrote, and how long records took."""

    output: Path
    records: int = 0
    faces: int = 0
    no_face: int = 0
    arrived: int = 0  # frames the source delivered while the run took frames
    processed: int = 0
    dropped: int = 0  # skipped as stale between processed frames (the sum of the records' ``dropped`` per frame)
    seconds: float = 0.0
    stopped_by: str = "end of stream"  # or "--max-frames", "--duration", "interrupted"
    latency_ms: list[float] = field(default_factory=list)  # per processed frame: capture to its last record written
    warnings: list[str] = field(default_factory=list)

    @property
    def unprocessed(self) -> int:
        """Frames that arrived after the last processed one, before the run stopped (0 at the end of a stream)."""
        return self.arrived - self.processed - self.dropped

    @property
    def fps(self) -> float:
        """Processed frames per second of the run."""
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def latency(self) -> dict[str, float | None]:
        """Median, 95th percentile and maximum of the per-frame latency in ms (None without frames)."""
        if not self.latency_ms:
            return {"median": None, "p95": None, "max": None}
        a = np.asarray(self.latency_ms)
        return {
            k: round(float(v), 2)
            for k, v in (("median", np.median(a)), ("p95", np.percentile(a, 95)), ("max", a.max()))
        }


def check_live_options(fmt: str, max_frames: int | None, duration: float | None, resume: bool = False) -> None:
    """One ``InputError`` for what a live run cannot do or a limit outside its domain."""
    if resume:
        raise InputError("--resume does not apply to --live: a live stream cannot be continued where it stopped")
    if fmt not in LIVE_FORMATS:
        raise InputError(f"--live writes {' or '.join(LIVE_FORMATS)} (records are read while they grow), not {fmt!r}")
    if max_frames is not None and (type(max_frames) is not int or not 1 <= max_frames <= 10**12):
        raise InputError(f"--max-frames must be a whole number of frames >= 1, got {max_frames!r}")
    if duration is not None and (isinstance(duration, bool) or not (math.isfinite(duration) and 0 < duration <= 10**9)):
        raise InputError(f"--duration must be a number of seconds > 0, got {duration!r}")


def warm_up(analyzer: Analyzer) -> None:
    """Run the bundled sample photo through the per-frame path once, before the source opens: loading the detector,
    the models' first runs and (``--aus``) starting the landmarker processes would otherwise make the first live
    frames late (by seconds with ``--aus``)."""
    frame = image_frame(sample_image())
    frame.timestamp = 0.0  # as a video frame
    for _ in analyzer.iter_live([frame], "warm-up"):
        pass


def run_live(
    source: str,
    analyzer: Analyzer,
    output: Path,
    fmt: str = "jsonl",
    max_frames: int | None = None,
    duration: float | None = None,
    fps: float | None = None,
    realtime: bool | None = None,
    handle_signals: bool = False,
    progress: Callable[[FaceRecord], None] | None = None,
    after_frame: Callable[[LiveFrame], None] | None = None,
) -> LiveSummary:
    """Analyse ``source`` (see :func:`~ferkit.media.live.resolve_source`) live into ``output`` until the stream ends,
    ``max_frames`` frames are processed, ``duration`` seconds pass or (``handle_signals``) Ctrl-C / SIGTERM.

    ``fps`` caps the processed frames per second; ``realtime`` paces the source (default: recordings are played at
    their own rate). ``progress(record)`` is called per record, ``after_frame(frame)`` after each frame's records are
    written (a test hook: a slow one makes the source drop frames).
    """
    check_live_options(fmt, max_frames, duration)
    live = LiveSource(source, realtime, problems=analyzer.warnings)  # opened (or refused) first; read from `with`
    try:
        warm_up(analyzer)
    except BaseException:
        live.close()
        raise
    summary = LiveSummary(Path(output), warnings=analyzer.warnings)
    name = source_name(source)
    start = time.monotonic()
    with live, stop_on_signals(live) if handle_signals else contextlib.nullcontext():
        with RecordWriter(output, fmt, analyzer.classes, au_keys=analyzer.au_keys, live=True) as writer:
            for frame, records in analyzer.iter_live(live.frames(max_frames, duration, fps), name):
                latency = 0.0
                for rec in records:
                    latency = (time.monotonic() - frame.captured) * 1000.0
                    writer.write(rec, {"latency_ms": round(latency, 2), "dropped": frame.dropped})
                    summary.faces += rec.face_id is not None
                    summary.no_face += rec.face_id is None
                    if progress:
                        progress(rec)
                summary.latency_ms.append(latency)
                if after_frame:
                    after_frame(frame)
        summary.seconds = time.monotonic() - start
        summary.arrived, summary.processed, summary.dropped = live.arrived, live.taken, live.dropped
        summary.records = writer.count
        if live.stopped:
            summary.stopped_by = "interrupted"
        elif max_frames is not None and live.taken >= max_frames:
            summary.stopped_by = "--max-frames"
        elif duration is not None and summary.seconds >= duration:
            summary.stopped_by = "--duration"
    return summary
