"""Bundled sample for the end-to-end demo: the public-domain NASA astronaut photo (Eileen Collins) that
scikit-image ships, and a short clip made from it by a slow pan and zoom (so the video path runs with no data)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np


def sample_image() -> Path:
    """Path of the bundled astronaut JPEG (512×512)."""
    return Path(str(resources.files("ferkit").joinpath("assets/samples/astronaut.jpg")))


def write_video(frames: Iterable[np.ndarray], path: Path, fps: int = 15, bit_rate: int = 2_000_000) -> Path:
    """Encode RGB frames (equal even sizes; any iterable, so long clips need not be held in memory) as MPEG-4."""
    import av

    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = bit_rate
        for rgb in itertools.chain([first], it):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_samples(folder: Path, seconds: float = 4.0, fps: int = 15) -> tuple[Path, Path]:
    """Copy the photo into ``folder`` and make ``astronaut_pan.mp4`` (320×240) from it; returns both paths."""
    import cv2

    from ferkit.media.images import read_image

    folder.mkdir(parents=True, exist_ok=True)
    image = Path(shutil.copy(sample_image(), folder / "astronaut.jpg"))
    rgb = read_image(image)
    frames = []
    n = int(seconds * fps)
    for i in range(n):
        a = i / max(1, n - 1)
        side = int(360 - 120 * a)  # zoom in from 360 px to 240 px of the photo
        x0, y0 = int(40 + 60 * a), int(10 + 20 * a)
        frames.append(
            cv2.resize(
                rgb[y0 : y0 + side, x0 : x0 + side * 4 // 3 if x0 + side * 4 // 3 <= 512 else 512],
                (320, 240),
                interpolation=cv2.INTER_AREA,
            )
        )
    return image, write_video(frames, folder / "astronaut_pan.mp4", fps)
