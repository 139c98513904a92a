"""Live input: a camera, a stream URL, or a recording played at its own rate, read by a thread that keeps only the
newest frame (a one-slot buffer).

:class:`LiveSource` opens the source with PyAV; its reader thread decodes continuously and overwrites the slot, so a
consumer slower than the source skips stale frames (each :class:`LiveFrame` says how many) instead of falling
behind: nothing queues, and the delay from capture to processing stays under one frame interval plus the consumer's
own time. A source with a duration (a file, a served recording) is paced by its timestamps, as a camera would
deliver it; a camera or a live stream arrives at its own rate.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ferkit.errors import InputError
from ferkit.media.images import Frame
from ferkit.media.video import gray_plane

#: Seconds PyAV waits to open a source and for each read before it gives up (a camera or server that hangs).
OPEN_TIMEOUT = 10.0
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_POLL = 0.1  # seconds between checks of a stop request while waiting for a frame


@dataclass
class LiveFrame(Frame):
    """A frame of a live source: ``timestamp`` is stream time (seconds from its first frame), ``index`` the frame's
    place in the stream (so indices jump over dropped frames)."""

    captured: float = 0.0  # time.monotonic() when the frame arrived (decoded; a paced recording: when it was due)
    wall_time: float = 0.0  # time.time() at the same instant
    dropped: int = 0  # frames that arrived since the previous take and were skipped as stale


def resolve_source(source: str) -> tuple[str, str | None, bool]:
    """``(url for PyAV, format or None, is a local file)`` of a ``--live`` SOURCE: ``N`` (the N-th camera), a device
    path (``/dev/video0``), a URL (``rtsp://``, ``http://``, ``udp://``, ``file://`` …) or a file path."""
    if not source.strip():
        raise InputError("--live: an empty string is not a source")
    if re.fullmatch(r"\d{1,3}", source):  # a camera index
        if sys.platform.startswith("linux"):
            return f"/dev/video{int(source)}", "v4l2", False
        if sys.platform == "darwin":
            return source, "avfoundation", False
        raise InputError(f"--live {source}: camera numbers work on Linux and macOS; give the device as a URL")
    if _URL.match(source):
        return source, None, False
    path = Path(source)
    if source.startswith("/dev/") and sys.platform.startswith("linux"):
        return source, "v4l2", False
    if path.is_dir():
        raise InputError(f"{source}: a folder, not a live source (a camera, stream URL or video file)")
    if not path.exists():
        raise InputError(f"{source}: no such file, device or stream URL")
    if not path.is_file():
        raise InputError(f"{source}: not a video file, camera device or stream URL")
    return "file:" + os.fspath(path.absolute()), None, True  # "file:": FFmpeg reads "concat:a|b" as a protocol


class LiveSource:
    """Newest-frame reader of a live source (see the module docstring); use as a context manager.

    Opening happens in the constructor, so an unusable source is an ``InputError`` before any work. ``realtime``:
    pace frames by their timestamps (default: for files and sources with a known duration). Frames are taken with
    :meth:`take` or :meth:`frames`; :meth:`stop` (safe in a signal handler) ends both at the next frame.
    """

    def __init__(
        self,
        source: str,
        realtime: bool | None = None,
        timeout: float = OPEN_TIMEOUT,
        problems: list[str] | None = None,
    ) -> None:
        import av

        self.source = source
        self.problems = problems if problems is not None else []
        url, fmt, local = resolve_source(source)
        try:
            self._container = av.open(url, format=fmt, timeout=(timeout, timeout))
        except (av.error.FFmpegError, OSError, ValueError) as e:
            name = source if local or url == source else f"{source} ({url})"
            raise InputError(f"{name}: cannot open live source ({getattr(e, 'strerror', None) or e})") from e
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{source}: no video stream")
        has_duration = bool(self._container.duration) and self._container.duration > 0
        self.realtime = (local or has_duration) if realtime is None else realtime
        self.arrived = self.taken = self.dropped = 0  # frames delivered; taken; skipped between takes
        self._cond = threading.Condition()
        self._slot: tuple[int, float, object, float, float] | None = None  # (index, t, av frame, monotonic, wall)
        self._ended = False
        self._error: Exception | None = None
        self._stop = False
        self._closing = threading.Event()
        self._last_index = -1
        self._thread = threading.Thread(target=self._read, name="ferkit-live-reader", daemon=True)

    def __enter__(self) -> LiveSource:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reader thread (it closes the container); a read blocked on the network is left to its timeout."""
        self._stop = True
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        elif not self._thread.ident:  # never started
            self._container.close()

    def stop(self) -> None:
        """Ask :meth:`take` to return ``None`` at its next check (only sets a flag: safe in a signal handler)."""
        self._stop = True

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop

    def take(self, deadline: float | None = None, since: float | None = None) -> LiveFrame | None:
        """The newest frame (waiting for one), or ``None`` at the end of the stream, after :meth:`stop` or when
        ``time.monotonic()`` passes ``deadline``; ``since``: wait for a frame whose stream time reaches that (the
        stream's last frame is taken whatever its time). ``InputError`` when the source ended before any frame."""
        with self._cond:
            while not self._stop:
                slot = self._slot
                if self._ended or (slot is not None and (since is None or slot[1] >= since - 1e-6)):
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
                self._cond.wait(wait)
            slot, self._slot = self._slot, None
        if self._stop or slot is None:
            self._check_end()
            return None
        index, t, av_frame, captured, wall = slot
        dropped = index - self._last_index - 1
        self._last_index = index
        self.taken += 1
        self.dropped += dropped
        gray = gray_plane(av_frame)
        return LiveFrame(index, t, gray, _av_frame=av_frame, captured=captured, wall_time=wall, dropped=dropped)

    def frames(
        self, max_frames: int | None = None, duration: float | None = None, fps: float | None = None
    ) -> Iterator[LiveFrame]:
        """Taken frames until the stream ends, :meth:`stop`, ``max_frames`` frames or ``duration`` seconds of wall
        time; ``fps``: at most this many frames per second of stream time, sampled as ``analyze --fps`` samples a file
        (the first frame at or after each instant 0, 1/fps, 2/fps …: a fresh frame, not one that waited in the slot),
        the frames between dropped."""
        deadline = None if duration is None else time.monotonic() + duration
        n, since = 0, None
        while max_frames is None or n < max_frames:
            frame = self.take(deadline, since)
            if frame is None:
                return
            since = None if fps is None else (math.floor((frame.timestamp + 1e-6) * fps) + 1) / fps  # next instant
            n += 1
            yield frame

    def _check_end(self) -> None:
        """At the end: a source that gave no frame is an ``InputError``; a stream that broke later is a problem."""
        if self._stop or not self._ended:
            return
        if self.arrived == 0:
            why = f" ({self._error})" if self._error else ""
            raise InputError(f"{self.source}: no frame could be decoded{why}")
        if self._error is not None:
            self.problems.append(f"{self.source}: stream broke after frame {self.arrived - 1} ({self._error})")
            self._error = None  # said once

    def _read(self) -> None:
        """The reader thread: decode, time-stamp, pace (recordings) and publish each frame into the slot."""
        container = self._container
        try:
            stream = container.streams.video[0]
            tb = float(stream.time_base) if stream.time_base else 0.0
            first_pts: int | None = None
            t_prev, now_prev, start = -1.0, 0.0, None
            for frame in container.decode(stream):
                if self._closing.is_set():
                    break
                now = time.monotonic()
                if frame.pts is not None and tb:
                    first_pts = frame.pts if first_pts is None else first_pts
                    t = round((frame.pts - first_pts) * tb, 6)
                else:
                    t = round(t_prev + (now - now_prev) if t_prev >= 0 else 0.0, 6)
                t = max(t, round(t_prev + 1e-6, 6))  # stream time only moves forward (pts jumps, wraps)
                if self.realtime:
                    start = now - t if start is None else start
                    if self._closing.wait(max(0.0, start + t - time.monotonic())):
                        break
                    now = time.monotonic()
                t_prev, now_prev = t, now
                with self._cond:
                    self._slot = (self.arrived, t, frame, now, time.time())
                    self.arrived += 1
                    self._cond.notify()
        except Exception as e:  # a decoding error (av.error.FFmpegError) or anything else: the stream ends here
            self._error = e
        finally:
            container.close()
            with self._cond:
                self._ended = True
                self._cond.notify()


@contextlib.contextmanager
def stop_on_signals(source: LiveSource) -> Iterator[None]:
    """While inside: the first SIGINT (Ctrl-C) or SIGTERM stops ``source`` cleanly (the frame being processed is
    finished and written); a second SIGINT interrupts as usual. Only in the main thread (elsewhere: nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: object) -> None:
        source.stop()
        signal.signal(signum, previous[signum] if signum == signal.SIGTERM else signal.default_int_handler)

    try:
        for s in previous:
            signal.signal(s, handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def serve_as_stream(clip: str | os.PathLike[str], url: str, codec: str = "mpeg4") -> int:
    """Play a video file as a live MPEG-TS stream to ``url`` at its own frame rate (e.g.
    ``tcp://127.0.0.1:8554?listen=1``: wait for one client, then send), re-encoded with ``codec``, one frame at a
    time; returns the frames sent. For trying ``--live`` without a camera: ``python -c "from ferkit.media.live import
    serve_as_stream; serve_as_stream('clip.mp4', 'tcp://127.0.0.1:8554?listen=1')"`` beside ``ferkit analyze --live
    tcp://127.0.0.1:8554``. PyAV holds the GIL while it waits for the client, so run it in its own process."""
    import av
    import numpy as np

    name = os.fspath(clip)
    try:
        src = av.open(name)
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{name}: cannot open ({getattr(e, 'strerror', None) or e})") from e
    with src:
        if not src.streams.video:
            raise InputError(f"{name}: no video stream")
        stream = src.streams.video[0]
        rate = stream.average_rate or 30
        h, w = (d - d % 2 for d in (stream.codec_context.height, stream.codec_context.width))  # 4:2:0: even sides
        sent = 0
        with av.open(url, "w", format="mpegts") as out:
            enc = out.add_stream(codec, rate=rate)
            enc.height, enc.width, enc.pix_fmt = h, w, "yuv420p"
            start = time.monotonic()
            for frame in src.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")[:h, :w]
                time.sleep(max(0.0, start + sent / float(rate) - time.monotonic()))
                out.mux(enc.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
                sent += 1
            out.mux(enc.encode())
    if not sent:
        raise InputError(f"{name}: no video frames")
    return sent
