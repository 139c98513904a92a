"""The unit of training data: one labelled image (a file or in-memory pixels) with its source, group and split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One labelled image: a file or in-memory pixels, with its raw label, source, group and split."""

    key: str  # unique and stable, e.g. "fer2013:train/angry/Training_1.jpg" or "fercsv:row 17"
    raw_label: str  # label as the source names it (folder name, CSV label), unmapped
    source: str  # the source's name (from config)
    path: Path | None = None  # image file; None when pixels are given
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)  # uint8 (H, W) or (H, W, 3) RGB
    group: str | None = None  # subject/group id for grouped splits
    split: str | None = None  # "train" | "validation" | "test" if the source defines it, else None
