"""Test clips for the curation flywheel: a real clip with a still face pasted into it (a poster on the wall).

``paste_still_face(src, photo, dst)`` decodes ``src`` and writes ``dst`` (MPEG-4) with ``photo`` (RGB) pasted at
the same place in every frame — the static-face filter must drop that face and keep the real one.
Used by tests/test_mine.py and benchmarks/curation.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkit.media.samples import write_video


def still_photo(video: Path, side: int = 150) -> np.ndarray:
    """The first frame of ``video`` resized to ``side``² (RGB): a photo of a face to paste."""
    import av
    import cv2

    with av.open(str(video)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    return cv2.resize(first, (side, side), interpolation=cv2.INTER_AREA)


def paste_still_face(src: Path, photo: np.ndarray, dst: Path, seconds: float = 8.0) -> Path:
    """``src``'s first ``seconds`` with ``photo`` pasted at its top right corner in every frame."""
    import av

    with av.open(str(src)) as c:
        rate = round(float(c.streams.video[0].average_rate or 25))
        frames = []
        for f in c.decode(video=0):
            if f.time is not None and f.time >= seconds:
                break
            frames.append(f.to_ndarray(format="rgb24"))
    h, w = frames[0].shape[:2]
    ph, pw = photo.shape[:2]
    if ph + 4 > h or pw + 4 > w:
        raise ValueError(f"photo {pw}x{ph} does not fit the {w}x{h} clip")
    out = []
    for rgb in frames:
        rgb = rgb[: h - h % 2, : w - w % 2].copy()
        rgb[4 : 4 + ph, w - pw - 4 : w - 4] = photo
        out.append(rgb)
    return write_video(out, dst, fps=rate)
