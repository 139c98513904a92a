"""Folder datasets (``<class>/*`` image subfolders) with class-name aliases; no torch needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

#: Common folder names of other datasets mapped onto ferkit's class names.
CLASS_ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "disgusted": "disgust",
    "disgust": "disgust",
    "fearful": "fear",
    "fear": "fear",
    "scared": "fear",
    "happiness": "happy",
    "happy": "happy",
    "joy": "happy",
    "neutral": "neutral",
    "neutrality": "neutral",
    "sadness": "sad",
    "sad": "sad",
    "surprised": "surprise",
    "surprise": "surprise",
    "contempt": "contempt",
}


def canonical_class(folder_name: str) -> str:
    """Map a folder name such as ``Anger`` or ``sadness`` to ferkit's class name (lower case if unknown)."""
    key = folder_name.strip().lower()
    return CLASS_ALIASES.get(key, key)


def is_image_file(path: Path) -> bool:
    """True for a regular file with a known image suffix."""
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class LabelledImage:
    """One image of a folder dataset: its path, folder name and canonical class."""

    path: Path
    folder: str
    label: str


def list_folder_dataset(root: Path) -> list[LabelledImage]:
    """List ``root/<class>/<image>`` files, sorted, with canonical labels.

    Raises ``FileNotFoundError`` for a missing root and ``ValueError`` when it holds no class folder with images.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    items = [
        LabelledImage(p, d.name, canonical_class(d.name))
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.iterdir())
        if is_image_file(p)
    ]
    if not items:
        raise ValueError(f"no <class>/<image> files found under {root}")
    return items
