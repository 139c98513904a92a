"""Energy-based voice-activity detection on a media file's audio track.

A reference for visual speech detection, not a speech recogniser: speech-band (300-3400 Hz) frame energy in dB is
compared with a threshold placed between the clip's noise floor and its loud level, then short gaps are bridged
(hangover) and short bursts dropped. A spectral-flatness gate rejects noise-like frames (hiss, breath); nothing here
tells a sung or rapped line from speech, or a voiced laugh from a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from scipy import signal

RATE = 16000  # Hz, after resampling
WIN_S = 0.025  # analysis window
HOP_S = 0.010  # analysis hop: the VAD track has 100 values per second
SILENCE_DB = -90.0  # frames quieter than this (dBFS) are digital silence


class VadTrack(NamedTuple):
    """Voice activity at ``times`` (s, media time); ``level_db`` is the speech-band energy, ``threshold_db`` the cut."""

    times: np.ndarray
    active: np.ndarray
    level_db: np.ndarray
    threshold_db: float


def load_audio(path: str | Path, rate: int = RATE) -> tuple[np.ndarray, float] | None:
    """Decode the first audio stream as mono float32 at ``rate`` Hz; return (samples, start time in s) or None.

    None means the file has no audio stream. The start time is the first decoded frame's presentation time, so the
    track lines up with video frame times taken from the same container.
    """
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        for frame in container.decode(stream):
            if start is None and frame.time is not None:
                start = float(frame.time)
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, start or 0.0


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs in ``mask``."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def smooth_activity(active: np.ndarray, hop_s: float, hangover_s: float, min_speech_s: float) -> np.ndarray:
    """Bridge inactive gaps under ``hangover_s`` (inside speech), then drop active runs under ``min_speech_s``."""
    out = active.astype(bool).copy()
    gaps = _runs(~out)
    for a, b in gaps:
        if a > 0 and b < len(out) and (b - a) * hop_s < hangover_s:
            out[a:b] = True
    for a, b in _runs(out):
        if (b - a) * hop_s < min_speech_s:
            out[a:b] = False
    return out


def voice_activity(
    samples: np.ndarray,
    rate: int = RATE,
    start: float = 0.0,
    floor_pct: float = 10.0,
    loud_pct: float = 95.0,
    min_snr_db: float = 12.0,
    below_loud_db: float = 30.0,
    abs_floor_db: float = -55.0,
    max_flatness: float = 0.6,
    hangover_s: float = 0.2,
    min_speech_s: float = 0.1,
) -> VadTrack:
    """Voice activity every 10 ms from mono ``samples``.

    The threshold is max(floor + ``min_snr_db``, loud - ``below_loud_db``, ``abs_floor_db``), with the floor and the
    loud level the ``floor_pct`` / ``loud_pct`` percentiles of the speech-band frame energy (dBFS). Frames whose
    spectral flatness (geometric / arithmetic mean of the 300-3400 Hz power spectrum) exceeds ``max_flatness`` are
    noise-like and count as inactive. Then gaps under ``hangover_s`` are bridged and runs under ``min_speech_s``
    dropped. Digital silence gives an all-False track.
    """
    win, hop = int(WIN_S * rate), int(HOP_S * rate)
    if len(samples) < win:
        empty = np.zeros(0)
        return VadTrack(empty, empty.astype(bool), empty, float("nan"))
    sos = signal.butter(4, [300.0, 3400.0], btype="band", fs=rate, output="sos")
    band = signal.sosfiltfilt(sos, samples.astype(np.float64))
    frames = np.lib.stride_tricks.sliding_window_view(band, win)[::hop]
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    spec = np.abs(np.fft.rfft(frames * np.hanning(win), axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(win, 1.0 / rate)
    spec = spec[:, (freqs >= 300.0) & (freqs <= 3400.0)]
    flatness = np.exp(np.mean(np.log(spec), axis=1)) / np.mean(spec, axis=1)
    floor = float(np.percentile(level, floor_pct))
    loud = float(np.percentile(level, loud_pct))
    threshold = max(floor + min_snr_db, loud - below_loud_db, abs_floor_db)
    raw = (level > threshold) & (level > SILENCE_DB) & (flatness <= max_flatness)
    active = smooth_activity(raw, HOP_S, hangover_s, min_speech_s)
    times = start + (np.arange(len(level)) * hop + win / 2) / rate
    return VadTrack(times, active, level, threshold)


def audio_vad(path: str | Path, **kwargs: float) -> VadTrack | None:
    """Voice activity of a media file's first audio stream; None when it has no audio stream."""
    loaded = load_audio(path)
    if loaded is None:
        return None
    samples, start = loaded
    return voice_activity(samples, RATE, start, **kwargs)


def activity_at(track: VadTrack, times: np.ndarray) -> np.ndarray:
    """Sample a VAD track at arbitrary times (nearest 10 ms frame; False outside the track)."""
    t = np.asarray(times, dtype=np.float64)
    if len(track.times) == 0:
        return np.zeros(t.shape, bool)
    idx = np.clip(np.round((t - track.times[0]) / HOP_S).astype(int), 0, len(track.times) - 1)
    inside = (t >= track.times[0] - HOP_S) & (t <= track.times[-1] + HOP_S)
    return track.active[idx] & inside
