"""Byte-identical duplicates among training samples: repeats inside a split and leakage across splits.

Used through :mod:`ferkit.training.sources`, which re-exports everything here. FER2013's folder release, for
example, holds
1,236 redundant copies inside train (1,035 groups) and 531 groups that span train and test (703 train files).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ferkit.labels.folders import file_digest
from ferkit.training.samples import Sample

#: Split name used in reports for samples whose split is not assigned yet.
UNASSIGNED = "unassigned"
EVAL_SPLITS = ("validation", "test")


def sample_digest(sample: Sample) -> str:
    """MD5 of the image file's bytes, or of the pixel buffer plus its shape (file and pixel samples never match)."""
    if sample.pixels is not None:
        px = sample.pixels
        return hashlib.md5(px.tobytes() + repr(px.shape).encode()).hexdigest()  # noqa: S324 - not security
    if sample.path is None:
        raise ValueError(f"{sample.key}: sample has neither a path nor pixels")
    return file_digest(sample.path)


@dataclass
class DuplicateReport:
    """Groups of byte-identical samples (by key): inside one split, and across splits."""

    within: dict[str, list[list[str]]]  # split -> groups (len >= 2) of identical samples in that split
    across: list[dict[str, list[str]]]  # groups spanning >= 2 splits: {split: [keys]}
    label_conflicts: list[list[str]] = field(default_factory=list)  # identical images with differing raw labels

    def summary(self) -> dict:
        """Counts: per split the groups and redundant copies (size − 1 summed), cross-split groups, train leakage."""
        return {
            "within": {
                split: {"groups": len(groups), "redundant_copies": sum(len(g) - 1 for g in groups)}
                for split, groups in sorted(self.within.items())
            },
            "cross_split_groups": len(self.across),
            "train_copies_of_eval": sum(
                len(g.get("train", [])) for g in self.across if any(s in g for s in EVAL_SPLITS)
            ),
            "label_conflict_groups": len(self.label_conflicts),
        }


def find_duplicates(samples: Sequence[Sample]) -> DuplicateReport:
    """Hash every sample (reads each file once) and group identical ones; keys inside groups are sorted."""
    by_digest: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_digest[sample_digest(s)].append(s)
    within: dict[str, list[list[str]]] = defaultdict(list)
    across: list[dict[str, list[str]]] = []
    conflicts: list[list[str]] = []
    for group in by_digest.values():
        if len(group) < 2:
            continue
        per_split: dict[str, list[str]] = defaultdict(list)
        for s in group:
            per_split[s.split or UNASSIGNED].append(s.key)
        for split, keys in per_split.items():
            if len(keys) > 1:
                within[split].append(sorted(keys))
        if len(per_split) > 1:
            across.append({k: sorted(v) for k, v in sorted(per_split.items())})
        if len({s.raw_label for s in group}) > 1:
            conflicts.append(sorted(s.key for s in group))
    return DuplicateReport(
        {k: sorted(v) for k, v in within.items()},
        sorted(across, key=lambda g: min(min(v) for v in g.values())),
        sorted(conflicts),
    )


def drop_duplicates(
    samples: Sequence[Sample],
    report: DuplicateReport,
    drop_train_copies_of_eval: bool = True,
    drop_repeats: bool = True,
) -> tuple[list[Sample], dict[str, int]]:
    """Remove train samples identical to a validation/test sample, then repeats inside train (first key kept).

    Returns the kept samples in their original order and ``{"train_copies_of_eval": n, "train_repeats": m}``.
    """
    leaked: set[str] = set()
    if drop_train_copies_of_eval:
        for g in report.across:
            if any(s in g for s in EVAL_SPLITS):
                leaked.update(g.get("train", []))
    repeats: set[str] = set()
    if drop_repeats:
        for keys in report.within.get("train", []):
            left = [k for k in keys if k not in leaked]  # keys are sorted: keep the first
            repeats.update(left[1:])
    drop = leaked | repeats
    kept = [s for s in samples if s.key not in drop]
    return kept, {"train_copies_of_eval": len(leaked), "train_repeats": len(repeats)}
