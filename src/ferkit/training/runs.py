"""A run folder (``<output>/<name>``) read back: ``config.json``, ``split.json``, ``history.json``, ``trainer.json``
and ``last.pt``. Each reader checks the shape its callers rely on, so a damaged or foreign file is one
:class:`~ferkit.errors.InputError` naming it, raised before a run or an export prints or computes anything."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from ferkit.errors import InputError
from ferkit.media.files import read_json_file
from ferkit.training.checkpoints import LAST_KEYS, load_checkpoint
from ferkit.training.config import RunConfig, config_from_dict

_J = TypeVar("_J", dict, list)

#: Largest run file read (a split.json of a few hundred thousand images is tens of MB).
MAX_RUN_JSON_BYTES = 1 << 30
#: Lists of sample names a ``split.json`` may hold.
_SPLIT_LISTS = ("train_keys", "validation_keys", "train_files", "validation_files")


def read_run_json(path: Path, shape: type[_J], missing: _J | None = None) -> _J:
    """The JSON ``shape`` (``dict`` or ``list``) in ``path``; ``missing`` when there is no such file (``None``: the
    file is required). Anything else (unreadable, not UTF-8, not JSON, another shape) is an ``InputError``."""
    path = Path(path)
    if missing is not None and not path.exists():
        return missing
    data = read_json_file(path, "run file", MAX_RUN_JSON_BYTES)
    if not isinstance(data, shape):
        want = "object" if shape is dict else "list"
        raise InputError(f"{path}: expected a JSON {want}, got {type(data).__name__}")
    return data


def read_split(path: Path, required: bool = True) -> dict:
    """A run's ``split.json`` (``{}`` if there is none and not ``required``); its sample lists are lists of names."""
    split = read_run_json(path, dict, None if required else {})
    for key in _SPLIT_LISTS:
        names = split.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{path}: {key} must be a list of sample names")
    return split


def load_run_config(run_dir: Path) -> RunConfig:
    """The config a run was started with (``config.json`` in its folder)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise InputError(f"{run_dir}: not a training run folder (no config.json)")
    try:
        return config_from_dict(read_run_json(path, dict))
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def check_run_folder(cfg: RunConfig, resume: bool | None, *, mmap: bool = False) -> dict | None:
    """``cfg``'s run folder for a new run (``resume`` False: it holds no ``last.pt``) or a resumed one (True: see
    :func:`check_resume`); ``None``: either, as the folder says. Returns the ``last.pt`` of a run to be resumed."""
    last = (cfg.run_dir / "last.pt").exists()
    if resume and not last:
        raise InputError(f"{cfg.run_dir}: nothing to resume (no last.pt)")
    if resume is False and last:
        raise InputError(
            f"{cfg.run_dir}: a run with this name exists; pass --resume to continue it or choose a new name"
        )
    return check_resume(cfg, mmap=mmap) if last else None


def check_resume(cfg: RunConfig, *, mmap: bool = False) -> dict:
    """What resuming ``cfg``'s run needs from its folder: ``config.json`` is this config, ``split.json`` (if any)
    lists the split, ``last.pt`` loads with every key. Returns ``last.pt`` (``mmap``: tensors mapped, not read)."""
    run_dir = cfg.run_dir
    if not (run_dir / "config.json").is_file():
        raise InputError(f"{run_dir}: not a run of `ferkit train` (no config.json); choose a new name")
    old, new = read_run_json(run_dir / "config.json", dict), cfg.to_dict()
    if old != new:
        diff = [k for k in new if old.get(k) != new[k]]
        raise InputError(f"{run_dir}: the config changed since this run started ({', '.join(diff)}); use a new name")
    split_file = run_dir / "split.json"
    if split_file.exists() and not {"train_keys", "validation_keys"} <= read_split(split_file).keys():
        raise InputError(f"{split_file}: lists no train_keys / validation_keys; choose a new name")
    return load_checkpoint(run_dir / "last.pt", LAST_KEYS, mmap=mmap)
