"""Reading still images (Pillow) at their true orientation, and the :class:`Frame` every stage downstream takes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkit.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

#: Images above this many pixels are refused (a 100 MP photo is ~300 MB decoded); detection needs far less.
MAX_IMAGE_PIXELS = 100_000_000


def is_image_file(path: Path) -> bool:
    """True for a regular file with a known image suffix."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


@dataclass
class Frame:
    """One image to analyse: a still (timestamp ``None``) or a sampled video frame."""

    index: int
    timestamp: float | None
    gray: np.ndarray
    _rgb: np.ndarray | None = None
    _av_frame: object | None = None

    def rgb(self) -> np.ndarray:
        """The RGB pixels (converted from the decoded frame on first use)."""
        if self._rgb is None:
            frame = self._av_frame
            if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
                # OpenCV's I420 conversion is several times faster than FFmpeg's swscale here
                yuv = frame.to_ndarray()  # (H * 3 / 2, W) planar Y, U, V
                self._rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
            else:
                self._rgb = frame.to_ndarray(format="rgb24")  # type: ignore[union-attr]
        return self._rgb


#: Longest image side accepted: OpenCV's warps (used by the face detectors) abort at SHRT_MAX (32767).
MAX_IMAGE_SIDE = 32766


def _to_rgb8(im) -> np.ndarray:
    """RGB uint8 from any Pillow mode, scaled from the image's true bit depth: 16-bit (``I;16``, or ``I`` holding
    16-bit values) by 1/257, 32-bit integers by their maximum, float (``F``) pixels in [0, 1] by 255 (else clipped to
    [0, 255]). Pillow's own ``convert("RGB")`` clips these to white or black."""
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return np.asarray(im.convert("RGB"))
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        finite = a[np.isfinite(a)]
        top = float(finite.max()) if finite.size else 0.0
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0) * (255.0 if top <= 1.0 else 1.0)
    elif im.mode.startswith("I;16") or a.max(initial=0) <= 65535:
        a = a / 257.0
    else:
        a = a * (255.0 / a.max())
    gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([gray, gray, gray]))


def read_image(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8; ``InputError`` for missing, non-image, truncated or huge files."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # our own pixel limit below replaces Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"{path}: image too large ({im.width}×{im.height} px > {MAX_IMAGE_PIXELS:,} px); downscale it first"
                )
            if max(im.size) > MAX_IMAGE_SIDE:  # OpenCV (also inside MediaPipe) aborts the process on such sides
                raise InputError(f"{path}: image side of {max(im.size)} px is more than {MAX_IMAGE_SIDE} px")
            im.load()
            return _to_rgb8(ImageOps.exif_transpose(im))  # phone photos: honour EXIF rotation
    except InputError:  # our own refusal (too large) is a ValueError too: pass it on as it is
        raise
    except UnidentifiedImageError as e:
        raise InputError(f"{path}: not an image file") from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{path}: image too large ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{path}: corrupt or truncated image ({e})") from e


def image_frame(path: Path) -> Frame:
    """A still image as a :class:`Frame` (timestamp ``None``)."""
    rgb = read_image(path)
    return Frame(0, None, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), _rgb=rgb)
