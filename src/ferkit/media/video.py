"""Streaming video decode (PyAV) sampled at a fixed rate.

Video frames carry their presentation timestamp in seconds from the start of the stream. Decoding is streaming, so
memory stays flat in video length; a gray plane is made for every frame and RGB only on demand (for detection).
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import InputError
from ferkit.media.images import IMAGE_SUFFIXES, Frame

#: Highest sampling rate ``--fps`` accepts (no camera records faster; above it, use 'all').
MAX_FPS = 1000.0
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})


@dataclass(frozen=True)
class VideoInfo:
    """Stream facts read from the container header."""

    width: int
    height: int
    fps: float
    frames: int
    duration: float | None


_LIMITED_TO_FULL = np.clip((np.arange(256) - 16) * 255 / 219 + 0.5, 0, 255).astype(np.uint8)
_PLANAR_YUV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"})


def gray_plane(frame) -> np.ndarray:
    """The frame's gray image: its luma plane (range-expanded like FFmpeg's gray conversion) when the pixel format
    is planar YUV, else FFmpeg's conversion. The shortcut is several times cheaper than converting."""
    name = frame.format.name
    if name not in _PLANAR_YUV:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    full = name.startswith("yuvj") or frame.color_range == 2  # AVCOL_RANGE_JPEG
    return np.ascontiguousarray(y) if full else cv2.LUT(y, _LIMITED_TO_FULL)


def _open(path: Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        # "file:" + an absolute path: FFmpeg would take a name like "concat:a|b" or "http:x" as a protocol URL
        container = av.open("file:" + str(path.absolute()))
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: not a readable video ({e.strerror or e})") from e
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: no video stream")
    return container


def video_info(path: Path) -> VideoInfo:
    """Width, height, frame rate, frame count and duration of the first video stream."""
    with _open(path) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate or s.guessed_rate or 0)
        dur = float(s.duration * s.time_base) if s.duration else (c.duration / 1e6 if c.duration else None)
        return VideoInfo(s.codec_context.width, s.codec_context.height, rate, int(s.frames or 0), dur)


def check_fps(fps: float | None, shown: str | None = None, option: str = "--fps") -> None:
    """``InputError`` unless ``fps`` is a rate in (0, :data:`MAX_FPS`] or None (every frame); ``shown``: the value as
    the user typed it, for the message."""
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise InputError(f"{option} must be a number in (0, {MAX_FPS:g}] or 'all', got {shown or fps}")


def check_every(every: int | None) -> None:
    """``InputError`` unless ``every`` (sample every N-th frame) is a whole number in [1, 10**9] or None."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 10**9):
        raise InputError(f"--every must be a whole number of frames in [1, 1e9], got {every!r}")


def iter_video(path: Path, fps: float | None = 5.0, problems: list[str] | None = None) -> Iterator[Frame]:
    """Decode ``path`` and yield frames sampled at ``fps`` (``None``: every frame), with timestamps in seconds.

    A frame is taken when its timestamp first reaches the next sampling instant (0, 1/fps, 2/fps, …), so timestamps
    are real presentation times, never interpolated. Raises ``InputError`` when no frame can be decoded; a stream
    that breaks part-way ends the iteration and a message is appended to ``problems``.
    """
    import av

    check_fps(fps)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time * tb if stream.start_time is not None else 0.0
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        step = None if fps is None else 1.0 / fps
        next_t, index, produced = 0.0, -1, 0
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                _stream_broke(path, e, produced, index, problems)
                break
            index += 1
            t = max(0.0, frame.pts * tb - start) if frame.pts is not None else index / rate
            if step is not None:
                if t + 1e-6 < next_t:
                    continue
                next_t = (math.floor((t + 1e-6) / step) + 1) * step  # the next instant after t, in one step
            produced += 1
            yield Frame(index, round(t, 6), gray_plane(frame), _av_frame=frame)
        if produced == 0:
            raise InputError(f"{path}: video has no decodable frames")
        _check_complete(path, stream, index, t_last=t if index >= 0 else None, problems=problems)
    finally:
        container.close()


def _stream_broke(path: Path, error: Exception, produced: int, after: int, problems: list[str] | None) -> None:
    """A decoding error: ``InputError`` when no frame was produced yet, else a note in ``problems`` (the caller
    stops there and keeps the frames before)."""
    if produced == 0:
        raise InputError(f"{path}: corrupt video, no frame could be decoded ({error})") from error
    if problems is not None:
        problems.append(f"{path}: decoding stopped after frame {after} ({error}); earlier frames kept")


def _check_complete(path: Path, stream, last_index: int, t_last: float | None, problems: list[str] | None) -> None:
    """Warn (via ``problems``) when the stream ended well before what its header promises: a cut file whose index
    survived decodes up to the cut without any error."""
    if problems is None or any(p.startswith(f"{path}: decoding stopped") for p in problems):
        return
    tb = float(stream.time_base) if stream.time_base else 0.0
    promised_frames = int(stream.frames or 0)
    promised_s = float(stream.duration * tb) if stream.duration and tb else None
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    short_frames = promised_frames > 0 and last_index + 1 < promised_frames - max(2, 0.02 * promised_frames)
    short_time = promised_s is not None and t_last is not None and t_last + 2.0 / max(rate, 1.0) < promised_s * 0.98
    if short_frames or short_time:
        problems.append(
            f"{path}: video ends early (cut or incomplete file): decoded {last_index + 1} frames"
            + (f" of {promised_frames}" if promised_frames else "")
            + "; records cover only the decoded part"
        )


def is_video(path: Path) -> bool:
    """Decide by suffix; unknown suffixes are treated as images unless Pillow cannot identify them."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES:
        return False
    from PIL import Image

    try:
        with Image.open(path):
            return False
    except Exception:
        return True


#: How :func:`iter_every` decodes the frames between samples (see docs/corpus.md for the measurements):
#: ``all`` decodes every frame (converting only the samples); ``nonref`` also tells the decoder to drop the
#: non-reference frames that are not samples (nothing depends on them, so the samples' pixels are unchanged);
#: ``seek`` adds a jump to the keyframe before a sample when one lies past the current position.
SKIP_MODES = ("all", "nonref", "seek")
#: ``seek`` mode jumps only over more frames than this (measured on the shared clips: a seek flushes the threaded
#: decoder, which costs about as much as decoding a few dozen small frames).
SEEK_GAP = 48


@dataclass(frozen=True)
class PacketIndex:
    """Presentation timestamps of the first video stream's packets in display order (``pts[i]`` is frame ``i``),
    and those of its keyframes."""

    pts: list[int]
    keys: list[int]


def packet_index(path: Path) -> PacketIndex:
    """The :class:`PacketIndex` of ``path`` (demuxing only, no decoding: a small fraction of decode time);
    ``InputError`` when its packets cannot be read or it has no frame."""
    import av

    pts, keys = [], []
    try:
        with _open(path) as container:
            for pkt in container.demux(container.streams.video[0]):
                if pkt.pts is None or pkt.size == 0 or pkt.is_discard:  # edit-list cuts: never shown
                    continue
                pts.append(pkt.pts)
                if pkt.is_keyframe:
                    keys.append(pkt.pts)
    except av.error.FFmpegError as e:
        raise InputError(f"{path}: corrupt video, its packets cannot be read ({e})") from e
    if not pts:
        raise InputError(f"{path}: video has no decodable frames")
    return PacketIndex(sorted(pts), sorted(keys))


@dataclass(frozen=True)
class FrameWindow:
    """Display-order frames ``[start, stop)`` of a video (``stop`` None: to its end), with its packet index when
    already known (the segments of a long film share one)."""

    start: int = 0
    stop: int | None = None
    index: PacketIndex | None = None


_WINDOW: ContextVar[FrameWindow | None] = ContextVar("ferkit_frame_window", default=None)


@contextlib.contextmanager
def frame_window(window: FrameWindow | None) -> Iterator[None]:
    """Inside the block, :func:`iter_every` called without a ``window`` of its own reads only ``window``: how a
    corpus run sends one segment of a long film through the analysis pipeline, which calls ``iter_every`` itself."""
    token = _WINDOW.set(window)
    try:
        yield
    finally:
        _WINDOW.reset(token)


def iter_every(
    path: Path,
    every: int,
    skip: str = "seek",
    problems: list[str] | None = None,
    window: FrameWindow | None = None,
) -> Iterator[Frame]:
    """Yield every ``every``-th frame of ``path`` in display order (indices 0, N, 2N, … exactly, also for
    variable frame rates), decoding as little of the rest as ``skip`` allows (:data:`SKIP_MODES`).

    The frame indices come from a demux-only pass over the packets' timestamps, so every mode yields the same
    frames with the same pixels; ``InputError`` when no frame can be decoded, a stream that breaks part-way ends
    the iteration with a message in ``problems``. ``window`` (else the one of an enclosing :func:`frame_window`)
    keeps the samples of those frames only — the same frames, indices and timestamps as in a whole-video pass —
    and starts with a seek to the keyframe before its first sample (``seek`` mode); a window past the end of the
    video yields nothing.
    """
    check_every(every)
    if skip not in SKIP_MODES:
        raise InputError(f"unknown skip mode {skip!r}; choose one of {', '.join(SKIP_MODES)}")
    window = window or _WINDOW.get() or FrameWindow()
    index = window.index or packet_index(path)
    first = -(-window.start // every) * every  # the first multiple of every in the window
    return _iter_targets(path, index, index.pts[first : window.stop : every], skip, problems, lenient=first > 0)


def _iter_targets(
    path: Path, index: PacketIndex, targets: list[int], skip: str, problems: list[str] | None, lenient: bool
) -> Iterator[Frame]:
    """The frames whose timestamps are ``targets`` (sorted), as :func:`iter_every` describes. ``lenient``: a
    window after the start, where a stream broken before its first sample ends it without an error."""
    import av

    if not targets:
        return
    order, keys = index.pts, index.keys
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base) if stream.time_base else 0.0
        start = stream.start_time if stream.start_time is not None else order[0]
        index_of = {p: i for i, p in enumerate(order)}
        wanted = set(targets)
        ctx = stream.codec_context
        produced, k = 0, 0  # k: the next target not yet yielded
        last_pts = last_sent = -(1 << 62)

        def seek_to(target: int) -> bool:
            """Jump to the keyframe at or before ``target`` when it lies more than :data:`SEEK_GAP` frames beyond
            the last packet sent to the decoder (a shorter jump costs more than decoding the frames between)."""
            i = bisect.bisect_right(keys, target) - 1
            if skip != "seek" or i < 0 or keys[i] <= last_sent:  # the target may already be in the decoder
                return False
            if index_of[keys[i]] - index_of.get(last_sent, -1) <= SEEK_GAP:
                return False
            container.seek(keys[i], stream=stream, backward=True, any_frame=False)
            return True

        seek_to(targets[0])  # a window's first sample: straight to its keyframe
        restart = True
        while k < len(targets):
            if restart:
                restart = False
                packets = container.demux(stream)
            try:
                pkt = next(packets)
                if pkt.pts is not None:
                    last_sent = max(last_sent, pkt.pts)
                    if skip != "all":
                        ctx.skip_frame = "DEFAULT" if pkt.pts in wanted else "NONREF"
                frames = pkt.decode()
            except StopIteration:
                break
            except av.error.FFmpegError as e:
                _stream_broke(path, e, produced + lenient, index_of.get(last_pts, -1), problems)
                break
            for frame in frames:
                if frame.pts is None:
                    continue
                last_pts = max(last_pts, frame.pts)
                while k < len(targets) and targets[k] < frame.pts:  # a sample the decoder never gave: passed
                    k += 1
                if k < len(targets) and frame.pts == targets[k]:
                    produced += 1
                    k += 1
                    t = max(0.0, (frame.pts - start) * tb)
                    yield Frame(index_of[frame.pts], round(t, 6), gray_plane(frame), _av_frame=frame)
            if pkt.pts is None and pkt.size == 0:  # the flush packet at the end
                break
            if k < len(targets) and seek_to(targets[k]):
                restart = True
        if produced == 0 and not lenient:
            raise InputError(f"{path}: video has no decodable frames")
    finally:
        container.close()
