"""Folder datasets (``<class>/*`` image or video subfolders) with class-name aliases; no torch needed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferkit.errors import InputError
from ferkit.media.images import is_image_file
from ferkit.media.video import VIDEO_SUFFIXES

#: The seven basic classes in ferkit's canonical order (FER2013's folder names).
BASIC_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]


def _emotion_aliases() -> dict[str, str]:
    """Folder name → emotion class, from the ``extended`` taxonomy file (the one place aliases are kept)."""
    from ferkit.labels.taxonomy import load_taxonomy

    tax = load_taxonomy("extended")
    emotions = [*BASIC_CLASSES, "contempt"]
    return {**{c: c for c in emotions}, **{k: v for k, v in tax.aliases.items() if v in emotions}}


#: Common folder names of other datasets mapped onto ferkit's class names (anger → angry, sadness → sad, …).
CLASS_ALIASES: dict[str, str] = _emotion_aliases()


def canonical_class(folder_name: str) -> str:
    """Map a folder name such as ``Anger`` or ``sadness`` to ferkit's class name (lower case if unknown)."""
    key = folder_name.strip().lower()
    return CLASS_ALIASES.get(key, key)


@dataclass(frozen=True)
class LabelledImage:
    """One image (or video clip) of a folder dataset: its path, folder name and canonical class."""

    path: Path
    folder: str
    label: str


def _list(root: Path, keep: Callable[[Path], bool]) -> list[LabelledImage]:
    return [
        LabelledImage(p, d.name, canonical_class(d.name))
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.iterdir())
        if keep(p)
    ]


def is_video_file(path: Path) -> bool:
    """True for a regular file with a known video suffix."""
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def list_folder_dataset(root: Path) -> list[LabelledImage]:
    """List ``root/<class>/<image>`` files, sorted, with canonical labels.

    Raises ``InputError`` for a missing root or one without any class folder holding images.
    """
    return _listed(root, is_image_file, "<class>/<image> files")


def list_folder_videos(root: Path) -> list[LabelledImage]:
    """List ``root/<class>/<clip>`` video files (by suffix), sorted, with canonical labels; ``InputError`` if none."""
    return _listed(root, is_video_file, "<class>/<clip> video files")


def _listed(root: Path, accept: Callable[[Path], bool], what: str) -> list[LabelledImage]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    items = _list(root, accept)
    if not items:
        raise InputError(f"{root}: no {what} found")
    return items


def dataset_media(root: Path) -> str:
    """``"images"`` or ``"videos"``: what the class folders of ``root`` hold (images when neither).

    A dataset mixing both is refused with ``InputError``: frame and image scores would be pooled into one metric.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: dataset folder not found")
    images, videos = len(_list(root, is_image_file)), len(_list(root, is_video_file))
    if images and videos:
        raise InputError(
            f"{root}: its class folders hold both images ({images}) and videos ({videos}); "
            "evaluate them as two dataset folders"
        )
    return "videos" if videos else "images"


def file_digest(path: Path) -> str:
    """MD5 of a file's bytes, to find byte-identical duplicates (e.g. FER2013 train copies of test images)."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()  # noqa: S324 - duplicate detection, not security
