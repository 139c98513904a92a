"""Training data for a run: sources → taxonomy labels → de-duplication → splits → model-input tensors.

Every source goes through :func:`ferkit.training.sources.load_pixels`, the path ``ferkit analyze`` uses (``crop``:
resize
only; ``detect``: detection + alignment), so training and inference see faces framed the same way. The split is
written to ``<run>/split.json`` on the first start and reused on ``--resume`` (and by ``data.split_from``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ferkit.errors import InputError
from ferkit.labels.taxonomy import load_taxonomy, map_labels
from ferkit.training.config import RunConfig, SourceConfig
from ferkit.training.duplicates import drop_duplicates, find_duplicates
from ferkit.training.runs import read_split
from ferkit.training.samples import Sample
from ferkit.training.sources import assign_splits, fer2013_csv_source, folder_source, labels_csv_source, load_many


@dataclass
class PreparedData:
    """Model-ready tensors (uint8 NCHW) with labels as class indices, plus what happened on the way."""

    classes: list[str]
    x_train: torch.Tensor
    y_train: torch.Tensor
    source_weight: np.ndarray  # per training image: its source's weight / the source's train count
    x_val: torch.Tensor
    y_val: torch.Tensor
    split: dict = field(default_factory=dict)  # what split.json holds: keys, files, reports


def read_source(src: SourceConfig, report: dict[str, list[str]]) -> tuple[list[Sample], dict | None]:
    """Samples of one configured source (and the weak-label report for ``weak_tags``)."""
    name = src.source_name
    path = Path(src.path)
    if src.kind == "folder":
        return folder_source(path, name, src.group_pattern, report), None
    if src.kind == "fer2013_csv":
        return fer2013_csv_source(path, name, report), None
    if src.labels is None:
        raise InputError(f"data.sources {name}: kind {src.kind!r} needs `labels` (the labels/tags file)")
    if src.kind == "labels_csv":
        return labels_csv_source(
            path, Path(src.labels), name, src.file_column, src.label_column, src.group_column, src.split_column, report
        ), None
    from ferkit.training.weak import weak_tag_source

    if src.rules is None:
        raise InputError(f"data.sources {name}: kind 'weak_tags' needs `rules` (a keyword rules TOML)")
    samples, weak = weak_tag_source(path, Path(src.labels), Path(src.rules), name)
    return samples, weak.summary()


def _subset(labels: list[str], per_class: int | None, fraction: float, seed: int) -> list[int]:
    """Deterministic random subset of each class: a ``fraction`` of it (keeps the imbalance), at most ``per_class``."""
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for cls in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == cls]
        n = min(per_class or len(idx), max(1, round(fraction * len(idx))))
        keep += rng.permutation(idx)[:n].tolist()
    return sorted(keep)


def file_name(sample: Sample) -> str:
    """``<folder>/<file>`` as model cards list validation files (what ``evaluate --split validation`` matches)."""
    return f"{sample.path.parent.name}/{sample.path.name}" if sample.path is not None else sample.key


def _plan_split(
    cfg: RunConfig, samples: list[Sample], labels: list[str], eval_only: list[Sample]
) -> tuple[list[int], list[int], dict]:
    """Indices of train and validation samples and the reports (duplicates, rule).

    ``eval_only`` (the ``test_dirs`` images no source holds) only take part in the duplicate check, so train copies
    of them are found and dropped too.
    """
    d = cfg.data
    # Duplicates are judged with unsplit samples counted as train (they are train or validation candidates).
    pool_all = [s if s.split else replace(s, split="train") for s in samples] + eval_only
    dup = find_duplicates(pool_all)
    info: dict = {"duplicates": dup.summary()}
    keep = list(range(len(samples)))
    if d.drop_duplicates:
        kept, dropped = drop_duplicates(pool_all, dup)
        kept_keys = {s.key for s in kept}
        keep = [i for i, s in enumerate(samples) if s.key in kept_keys]
        info["dropped"] = dropped
    # A source with train but no validation images gives part of its train split to validation.
    has_val = {s.source for s in samples if s.split == "validation"}
    samples = [replace(s, split=None) if s.split == "train" and s.source not in has_val else s for s in samples]
    pool = [samples[i] for i in keep]
    pool = assign_splits(pool, d.val_fraction, cfg.seed, labels=[labels[i] for i in keep])
    use = {s.source_name: set(s.splits) for s in d.sources}
    train = [i for i, s in zip(keep, pool, strict=True) if s.split == "train" and "train" in use[s.source]]
    val = [i for i, s in zip(keep, pool, strict=True) if s.split == "validation"]
    if d.max_per_class or d.train_fraction < 1:
        train = [train[j] for j in _subset([labels[i] for i in train], d.max_per_class, d.train_fraction, cfg.seed)]
    if d.val_max_per_class:
        val = [val[j] for j in _subset([labels[i] for i in val], d.val_max_per_class, 1.0, cfg.seed)]
    info["rule"] = (
        "samples mapped onto the taxonomy; duplicates by file bytes "
        + (
            "dropped (train copies of validation/test images, repeats inside train); "
            if d.drop_duplicates
            else "kept; "
        )
        + "sources without a validation split give a stratified (grouped if groups are known) "
        f"val_fraction={d.val_fraction} of their train samples, seed={cfg.seed}"
        + (f"; at most {d.max_per_class} train samples per class" if d.max_per_class else "")
        + (f"; a random {d.train_fraction} of each class's train samples" if d.train_fraction < 1 else "")
    )
    return train, val, info


def prepare_data(
    cfg: RunConfig, run_dir: Path, log: Callable[[str], None] = print, resume: bool = False
) -> PreparedData:
    """Read, map, split (a resumed run reuses its ``split.json``) and load the run's images."""
    d = cfg.data
    taxonomy = load_taxonomy(d.taxonomy)
    report: dict[str, list[str]] = {}
    samples: list[Sample] = []
    weak_reports = {}
    for src in d.sources:
        part, weak = read_source(src, report)
        samples += part
        if weak is not None:
            weak_reports[src.source_name] = weak
    for kind, problems in report.items():
        log(f"{kind.replace('_', ' ')}: {len(problems)}, e.g. {problems[0]} (all listed in split.json)")
    for name, weak in weak_reports.items():
        log(f"weak labels of {name}: {weak}")
    mapped, label_report = map_labels([s.raw_label for s in samples], taxonomy)
    if label_report.unknown:
        names = ", ".join(f"{k} ({n})" for k, n in sorted(label_report.unknown.items()))
        if d.unknown_labels == "error":
            raise InputError(
                f"labels not in taxonomy {taxonomy.name!r}: {names}; add them to the taxonomy's aliases or ignore "
                "list, or set data.unknown_labels = 'skip'"
            )
        log(f"skipping labels not in taxonomy {taxonomy.name!r}: {names}")
    idx = [i for i, m in enumerate(mapped) if m is not None]
    samples = [samples[i] for i in idx]
    labels = [mapped[i] for i in idx]
    if not samples:
        raise InputError("no training samples left after mapping labels onto the taxonomy")
    split_file = run_dir / "split.json"
    if resume and split_file.exists():
        split = read_split(split_file)
        train, val = _select(samples, split["train_keys"], "key"), _select(samples, split["validation_keys"], "key")
    else:
        if d.split_from:
            samples = _fixed_validation(samples, d.split_from)
        train, val, info = _plan_split(cfg, samples, labels, _eval_only(d.test_dirs, samples))
        log(f"duplicates (byte-identical files): {info['duplicates']}; dropped: {info.get('dropped', 'none')}")
        split = {
            **info,
            "taxonomy": taxonomy.name,
            "classes": list(taxonomy.classes),
            "label_report": label_report.summary(),
            "source_problems": report,
            "weak_labels": weak_reports,
            "train_keys": [samples[i].key for i in train],
            "validation_keys": [samples[i].key for i in val],
            "validation_files": sorted(file_name(samples[i]) for i in val),
            "split_from": d.split_from,
        }
    x_tr, y_tr, src_tr, bad_tr = _load(cfg, [samples[i] for i in train], [labels[i] for i in train], taxonomy.classes)
    x_va, y_va, _, bad_va = _load(cfg, [samples[i] for i in val], [labels[i] for i in val], taxonomy.classes)
    if not len(y_tr) or not len(y_va):
        raise InputError(f"{len(y_tr)} train and {len(y_va)} validation images could be used; both must be > 0")
    # Draw weight per image: its source's weight / the source's train count, so sources are drawn by their weights.
    per_source = Counter(src_tr)
    weights = {s.source_name: s.weight for s in d.sources}
    w_tr = np.array([weights[n] / per_source[n] for n in src_tr])
    split["unreadable"] = bad_tr + bad_va
    if bad_tr or bad_va:
        log(f"skipped {len(bad_tr) + len(bad_va)} unreadable images (listed in split.json under 'unreadable')")
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (resume and split_file.exists()):
        split_file.write_text(json.dumps(split, indent=1))
    counts = Counter(labels[i] for i in train)
    log("train " + ", ".join(f"{c} {counts.get(c, 0)}" for c in taxonomy.classes) + f"; validation {len(val)}")
    return PreparedData(list(taxonomy.classes), x_tr, y_tr, w_tr, x_va, y_va, split)


def _select(samples: list[Sample], names: list[str], by: str) -> list[int]:
    """Indices of the samples a stored list names, by ``key`` or (first trainer's splits) by ``<folder>/<file>``."""
    if by == "key":
        pos = {s.key: i for i, s in enumerate(samples)}
    else:
        pos = {file_name(s): i for i, s in enumerate(samples) if s.split in (None, "train")}
    missing = [k for k in names if k not in pos]
    if missing:
        raise InputError(f"the stored split lists {len(missing)} samples the sources no longer have, e.g. {missing[0]}")
    return [pos[k] for k in names]


def read_split_from(ref: str) -> dict:
    """What ``data.split_from`` names: another run's ``split.json``, or a model folder (a bundled name like
    ``ferkit`` or a path) whose card lists the validation files it was trained without."""
    from ferkit.training.onnx_init import model_folder

    folder = model_folder(ref)
    path = folder / "card.json" if folder is not None else Path(ref)
    try:
        other = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(f"data.split_from: {ref} is not a readable split.json or model folder ({exc})") from None
    if folder is not None:
        other = other.get("training") if isinstance(other, dict) else None
    if not isinstance(other, dict) or not ("validation_keys" in other or "validation_files" in other):
        raise InputError(f"data.split_from: {ref} lists no validation_keys or validation_files")
    return other


def _fixed_validation(samples: list[Sample], ref: str) -> list[Sample]:
    """Mark the validation images ``data.split_from`` lists as validation (the rest is split as usual)."""
    other = read_split_from(ref)
    if "validation_keys" in other:
        val = set(_select(samples, other["validation_keys"], "key"))
    else:
        val = set(_select(samples, other["validation_files"], "file"))
    return [replace(s, split="validation") if i in val else s for i, s in enumerate(samples)]


def _eval_only(test_dirs: list[str], samples: list[Sample]) -> list[Sample]:
    """Images of ``test_dirs`` not already among the sources, as test samples for the duplicate check."""
    held = {os.path.normpath(s.path.parent.parent) for s in samples if s.path is not None}
    out: list[Sample] = []
    for i, t in enumerate(test_dirs):
        if os.path.normpath(t) not in held:
            out += [replace(s, split="test") for s in folder_source(Path(t), f"test_dirs[{i}]")]
    return out


def _load(
    cfg: RunConfig, samples: list[Sample], labels: list[str], classes: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    d = cfg.data
    align = {s.source_name: s.align for s in d.sources}
    xs, ys, ws, bad = [], [], [], []
    for mode in sorted({align[s.source] for s in samples}):
        part = [i for i, s in enumerate(samples) if align[s.source] == mode]
        arr, ok, failed = load_many([samples[i] for i in part], d.input_size, d.channels, mode)
        bad += failed
        if len(ok):
            xs.append(arr)
            ys += [classes.index(labels[part[j]]) for j in ok]
            ws += [samples[part[j]].source for j in ok]
    if not xs:
        return (
            torch.zeros(0, 1, d.input_size, d.input_size, dtype=torch.uint8),
            torch.zeros(0, dtype=torch.long),
            [],
            bad,
        )
    x = np.concatenate(xs)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(ys), ws, bad
