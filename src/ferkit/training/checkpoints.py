"""Training checkpoints: atomic writes, safe loading (tensors and plain data only), and the code's commit."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ferkit.errors import InputError

#: Keys every checkpoint of a run holds, with their types (``best.pt``; a legacy ``best.pt`` has just these).
BEST_KEYS: dict[str, type | tuple[type, ...]] = {"model": dict, "config": dict, "epoch": int}
#: What ``--resume`` needs from ``last.pt``.
LAST_KEYS: dict[str, type | tuple[type, ...]] = {
    **BEST_KEYS,
    "ema": dict,
    "opt": dict,
    "sched": dict,
    "scaler": dict,
    "best": (int, float),
    "best_epoch": int,
    "history": list,
}


def load_checkpoint(
    path: Path, required: Mapping[str, type | tuple[type, ...]] | None = None, *, mmap: bool = False
) -> dict:
    """A checkpoint of ``ferkit train`` (tensors and plain data only) on the CPU; ``InputError`` if it does not load
    or lacks a ``required`` key of its type. ``mmap``: map the tensors instead of reading them (a cheap check)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about a foreign pickle's protocol before refusing it
            ck = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # an unpickling or format error: not a ferkit checkpoint
        raise InputError(f"{path}: not a readable ferkit checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict):
        raise InputError(f"{path}: not a ferkit checkpoint (holds a {type(ck).__name__}, not a mapping)")
    for key, kind in (required or {}).items():
        if not isinstance(ck.get(key), kind):
            raise InputError(f"{path}: not a ferkit checkpoint ({key!r} missing or of the wrong type)")
    return ck


def load_states(ck: dict, path: Path, parts: Mapping[str, Any]) -> None:
    """Load ``ck[key]`` into each ``parts[key]`` (a module, optimiser, scheduler, …: ``load_state_dict``);
    ``InputError`` naming ``path`` when a state does not fit."""
    for key, part in parts.items():
        try:
            part.load_state_dict(ck[key])
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise InputError(f"{path}: its {key} state does not fit ({detail})") from None


def git_commit() -> str | None:
    """The repository commit the code runs from (recorded with runs and model cards), if in a git checkout."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def save_checkpoint(path: Path, obj: dict) -> None:
    """Write atomically: a crash mid-write never leaves a broken checkpoint."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
