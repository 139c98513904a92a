"""The package layout is the architecture: import-linter contracts (pyproject.toml) hold on the code, catch an upward
import, a forbidden torch import and a cycle when one is added, and docs/architecture.md's diagram matches the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ferkit"
STAGES = {"media", "labels", "faces", "models", "analysis", "evaluation", "training", "cli", "stock", "assets"}


def lint(project: Path, src: Path) -> subprocess.CompletedProcess:
    """Run import-linter on ``src/ferkit`` with ``project``'s pyproject.toml, in a fresh process."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package's Python files and pyproject.toml, to break on purpose."""
    root = tmp_path_factory.mktemp("arch")
    shutil.copytree(SRC, root / "src" / "ferkit", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_contracts_hold_on_the_code() -> None:
    result = lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # a lower stage importing a higher one
        ("faces/tracking.py", "from ferkit.analysis.pipeline import Analyzer", "ferkit.faces is not allowed to import"),
        # the analysis path reaching torch or training code, even inside a function
        ("analysis/records.py", "def _f():\n    import torch", "ferkit.analysis is not allowed to import torch"),
        ("models/base.py", "from ferkit.training.loop import train", "ferkit.models is not allowed to import"),
        # a cycle between two siblings of one stage
        ("models/calibration.py", "from ferkit.models.fusion import fuse_models", "No import cycles"),
    ],
)
def test_a_broken_rule_fails_the_check(scratch: Path, module: str, line: str, message: str) -> None:
    target = scratch / "src" / "ferkit" / module
    original = target.read_text()
    if "cycle" in message.lower():  # make fusion import calibration too, closing the loop
        fusion = scratch / "src" / "ferkit" / "models" / "fusion.py"
        fusion_original = fusion.read_text()
        fusion.write_text(fusion_original + "\nfrom ferkit.models.calibration import Calibration  # noqa\n")
    try:
        target.write_text(original + "\n" + line + "\n")
        result = lint(scratch, scratch / "src")
    finally:
        target.write_text(original)
        if "cycle" in message.lower():
            fusion.write_text(fusion_original)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout


def test_the_tree_reads_as_the_stages() -> None:
    top_modules = sorted(p.name for p in SRC.glob("*.py"))
    assert len(top_modules) <= 6, top_modules
    assert {p.name for p in SRC.iterdir() if p.is_dir() and p.name != "__pycache__"} <= STAGES | {
        "curation",
        "corpus",
    }


def test_the_diagram_matches_the_imports() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "architecture_diagram.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
