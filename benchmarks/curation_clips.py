"""Test clips for the curation flywheel: a real clip with a still face pasted into it (a poster on the wall).

``paste_still_face(src, photo, dst)`` decodes ``src`` and writes ``dst`` (MPEG-4) with ``photo`` (RGB) pasted at
the same place in every frame — the static-face filter must drop that face and keep the real one.
Used by tests/test_mine.py and benchmarks/curation.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def paste_still_face(
    src: Path, photo: np.ndarray, dst: Path, seconds: float = 8.0, corner: str = "right", every: int = 1
) -> Path:
    """``src``'s first ``seconds`` with ``photo`` pasted at the top ``corner`` (left or right) of every frame."""
    import av

    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        rate = int(round(float(stream.average_rate or 25)))
        frames = []
        for k, f in enumerate(c.decode(video=0)):
            if f.time is not None and f.time >= seconds:
                break
            if k % every == 0:
                frames.append(f.to_ndarray(format="rgb24"))
    h, w = frames[0].shape[:2]
    ph, pw = photo.shape[:2]
    if ph > h or pw > w:
        raise ValueError(f"photo {pw}x{ph} does not fit the {w}x{h} clip")
    x = w - pw - 4 if corner == "right" else 4
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("mpeg4", rate=max(1, rate // every))
        vs.width, vs.height, vs.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        vs.bit_rate = 2_000_000
        for rgb in frames:
            rgb = rgb.copy()
            rgb[4 : 4 + ph, x : x + pw] = photo
            rgb = np.ascontiguousarray(rgb[: h - h % 2, : w - w % 2])
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return dst
