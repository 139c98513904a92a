"""Helpers of the stock-photo tests: the replay server with the recorded fixtures, and pull configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import DATA

from ferkit.stock.replay import ReplayServer, load_recorded

FIXTURES = Path(__file__).parent / "fixtures" / "stock"
KEY = "replay-key-5f3a9c"  # the server's key: must never appear in any output or file
TRUNCATED = "/data/sfew/train/happy/AlexEmma_000548800_00000021.png"  # photo 104's first download is cut short


def server(**kwargs: object) -> ReplayServer:
    """A replay server over ../shared/data answering the recorded exchanges (not started)."""
    recorded = load_recorded(sorted(FIXTURES.glob("*.json")))
    return ReplayServer(DATA, key=KEY, recorded=recorded, **kwargs)  # type: ignore[arg-type]


def write_config(path: Path, classes: dict[str, list[str]], **opts: object) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in opts.items()] + ["[classes]"]
    lines += [f"{c} = {json.dumps(q)}" for c, q in classes.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: object, env: dict[str, str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    """``python -m ferkit.cli ARGS`` with the given environment additions (no inherited API keys)."""
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "ferkit.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=300,
        **kw,  # type: ignore[arg-type]
    )
