"""Checks of a validated run config against the world, before a run prints or writes anything: the run folder can be
made (or, if it holds a run, its files are sound), sources, checkpoints and test folders exist, the backbone and its
options, the taxonomy and the minority classes are known. A problem is one :class:`~ferkit.errors.InputError` line
naming the key, instead of an error after the first progress lines (or after the whole training, for
``data.test_dirs``)."""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path

from ferkit.errors import InputError
from ferkit.media.files import check_out_dir
from ferkit.training.config import RunConfig

#: Folders that hold no training data but are endless or special.
_SPECIAL_ROOTS = ("/proc", "/sys", "/dev")


def _checkpoint(key: str, value: str) -> None:
    path = Path(value)
    if not path.is_file():
        raise InputError(f"{key}: {value} not found (a best.pt or last.pt of another run)")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{key}: {value} is not a torch checkpoint (best.pt / last.pt)")


def check_run(cfg: RunConfig, export: bool = True, resume: bool | None = None) -> None:
    """Everything :func:`ferkit.training.loop.train` (and the export after it) would otherwise find out late;
    ``resume``: whether the run is to be resumed (``None``: not known, so a run folder is checked as it is)."""
    from ferkit.labels.taxonomy import load_taxonomy
    from ferkit.training.backbones import BACKBONES
    from ferkit.training.runs import check_run_folder

    check_out_dir(cfg.run_dir, "run folder (output/name)")
    check_run_folder(cfg, resume, mmap=True)
    for i, src in enumerate(cfg.data.sources):
        path = Path(src.path)
        key = f"data.sources[{i}].path"
        if not path.exists():
            raise InputError(f"{key}: {src.path} not found")
        if str(path.resolve()).startswith(_SPECIAL_ROOTS):
            raise InputError(f"{key}: {src.path} is a system folder, not training data")
        if src.kind == "folder" and not path.is_dir():
            raise InputError(f"{key}: {src.path} is not a folder (kind = 'folder')")
        if src.kind != "folder" and src.kind != "weak_tags" and not path.is_file() and not path.is_dir():
            raise InputError(f"{key}: {src.path} is neither a file nor a folder")
    if cfg.model.backbone not in BACKBONES:
        known = ", ".join(sorted(BACKBONES))
        raise InputError(f"model.backbone: unknown backbone {cfg.model.backbone!r}; known: {known}")
    params = inspect.signature(BACKBONES[cfg.model.backbone]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(cfg.model.options) - set(params) - {"num_classes", "in_channels", "dropout"})
        if unknown:
            raise InputError(
                f"model.options: {', '.join(unknown)} not options of {cfg.model.backbone} "
                f"(known: {', '.join(p for p in params if p not in ('num_classes', 'in_channels', 'dropout'))})"
            )
    from ferkit.training.onnx_init import checked_folder, model_folder

    folder = model_folder(cfg.model.init_from) if cfg.model.init_from else None
    if folder is not None:
        checked_folder(folder)
    elif cfg.model.init_from:
        _checkpoint("model.init_from", cfg.model.init_from)
    if cfg.distill.teacher:
        _checkpoint("distill.teacher", cfg.distill.teacher)
    if cfg.data.split_from:
        from ferkit.training.data import read_split_from

        read_split_from(cfg.data.split_from)
    classes = load_taxonomy(cfg.data.taxonomy).classes
    if cfg.model.trainable:  # names no parameter? (building the backbone untrained takes well under a second)
        from ferkit.training.backbones import configured_backbone
        from ferkit.training.loop import freeze_except

        freeze_except(configured_backbone(cfg, max(2, len(classes))), cfg.model.trainable)
    unknown = [c for c in cfg.imbalance.minority if c not in classes]
    if unknown:
        raise InputError(f"imbalance.minority: {', '.join(unknown)} not among the classes ({', '.join(classes)})")
    if export:
        for i, d in enumerate(cfg.data.test_dirs):
            if not Path(d).is_dir():
                raise InputError(f"data.test_dirs[{i}]: {d} is not a folder")
