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
            im.load()
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))  # phone photos: honour EXIF rotation
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
