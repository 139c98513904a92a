"""Training checkpoints: atomic writes, safe loading (tensors and plain data only), and the code's commit."""

from __future__ import annotations

from pathlib import Path

import torch

from ferkit.errors import InputError


def load_checkpoint(path: Path) -> dict:
    """A checkpoint of ``ferkit train`` (tensors and plain data only) on the CPU; ``InputError`` if unusable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # an unpickling or format error: not a ferkit checkpoint
        raise InputError(f"{path}: not a readable ferkit checkpoint ({type(exc).__name__})") from None


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
