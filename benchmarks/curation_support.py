"""Shared by tests/test_mine.py, tests/test_curate.py and benchmarks/curation.py.

``paste_still_face(src, photo, dst)`` decodes ``src`` and writes ``dst`` (MPEG-4) with ``photo`` (RGB) pasted at
the same place in every frame (a poster on the wall): the static-face filter must drop that face and keep the real
one. ``chromium()`` finds Debian's browser and ``press(page, key)`` drives the curate page by keyboard.
"""

from __future__ import annotations

import json
import shutil
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


def chromium() -> str | None:
    """Debian's chromium (``apt-get install chromium``; Playwright drives it with ``executable_path``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def face_shown(page) -> str:
    """The id of the face the curate page shows ('' when none is left)."""
    return page.evaluate("document.body.dataset.face")


def press(page, key: str, timeout_ms: int = 10_000) -> str:
    """Press ``key`` on the curate page and wait until it shows another face (or none); returns the new id."""
    before = face_shown(page)
    page.keyboard.press(key)
    try:
        page.wait_for_function(
            f"document.body.dataset.face !== {json.dumps(before)} && document.body.dataset.busy !== '1'",
            timeout=timeout_ms,
        )
    except Exception as e:
        raise AssertionError(f"key {key!r} on face {before}: page says {page.inner_text('#status')!r}") from e
    return face_shown(page)
