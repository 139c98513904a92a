"""Streaming decode, sampling and timestamps on the shared video; broken videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import VIDEO

from ferkit.errors import InputError
from ferkit.media.video import iter_video, video_info


def test_every_frame_timestamps_match_duration() -> None:
    info = video_info(VIDEO)
    frames = list(iter_video(VIDEO, None))
    ts = np.array([f.timestamp for f in frames])
    assert len(frames) == info.frames == 464
    assert np.all(np.diff(ts) > 0) and ts[0] == 0
    assert abs(ts[-1] - (info.frames - 1) / info.fps) < 1e-3  # 463 / 29.97 s
    assert frames[0].gray.shape == (336, 596) and frames[0].rgb().shape == (336, 596, 3)


@pytest.mark.parametrize("fps", [5.0, 2.0, 12.5])
def test_sampling_rate_and_true_timestamps(fps: float) -> None:
    every = {f.index: f.timestamp for f in iter_video(VIDEO, None)}
    sampled = list(iter_video(VIDEO, fps))
    ts = np.array([f.timestamp for f in sampled])
    assert len(sampled) == pytest.approx(15.45 * fps, abs=1.5)
    assert np.allclose(np.diff(ts), 1 / fps, atol=1 / 29.97 + 1e-6)
    assert all(every[f.index] == f.timestamp for f in sampled)  # real presentation times, not interpolated


def test_truncated_stream_keeps_decoded_frames(tmp_path: Path) -> None:
    import av

    from ferkit.media.samples import write_video

    with av.open(str(VIDEO)) as c:  # an MPEG-TS copy: unlike MP4 it has no index, so a cut file stays readable
        frames = [f.to_ndarray(format="rgb24") for f, _ in zip(c.decode(video=0), range(60), strict=False)]
    full = write_video(frames, tmp_path / "full.ts", fps=30)
    cut = tmp_path / "cut.ts"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    problems: list[str] = []
    got = list(iter_video(cut, None, problems))
    assert 5 < len(got) < 60
    assert np.all(np.diff([f.timestamp for f in got]) > 0)


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 10])
def test_empty_or_garbage_video_is_an_input_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(InputError, match=r"bad\.mp4"):
        list(iter_video(p, 5))


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list(iter_video(tmp_path / "nope.mp4", 5))


def test_luma_shortcut_equals_ffmpeg_gray_conversion() -> None:
    import av

    from ferkit.media.video import gray_plane

    with av.open(str(VIDEO)) as c:
        for frame, _ in zip(c.decode(video=0), range(5), strict=False):
            np.testing.assert_array_equal(gray_plane(frame), frame.to_ndarray(format="gray"))
