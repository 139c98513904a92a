"""``ferkit relabel``: folder aliases and AU rules move images between labels, reported and undoable from the log."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import FER, ROOT, fer_files

from ferkit.curation import relabel as rl

RULES = ROOT / "src" / "ferkit" / "assets" / "curate" / "relabel.toml"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _dataset(root: Path) -> Path:
    files = fer_files("test", 2)
    for i, name in enumerate(["smile_fake/a.png", "smile_fake/b.png", "happy/c.png", "questioning/d.png",
                              "questioning/e.png", "questioning/f.png", "masking/g.png"]):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[i], root / name)
    aus = {"questioning/d.png": {"AU01": 0.9, "AU12": 0.1}, "questioning/e.png": {"AU02": 0.8, "AU12": 0.7},
           "questioning/f.png": {"AU01": 0.2}}  # fmt: skip
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "file", "label", "aus"])
        w.writeheader()
        for f, a in aus.items():
            w.writerow({"id": Path(f).stem, "file": f, "label": "questioning", "aus": json.dumps(a)})
    return root


def _ferkit(*args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *args], capture_output=True, text=True, env=env)


def test_rules_move_by_folder_alias_and_au_and_undo_restores_everything(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / "ds")
    before = _tree(ds)
    dry = _ferkit("relabel", str(ds), "--rules", str(RULES), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _tree(ds) == before
    lines = sorted(line.split("\t")[0] for line in dry.stdout.splitlines())
    assert lines == [
        "masking/g.png -> hard_case/g.png",
        "questioning/d.png -> hard_case/d.png",  # AU01 without AU12; e has AU12 (stays), f has no brow raiser
        "smile_fake/a.png -> hard_case/a.png",
        "smile_fake/b.png -> hard_case/b.png",
    ]
    (ds / "hard_case").mkdir()
    (ds / "hard_case" / "b.png").write_bytes(b"already here")  # never overwritten
    done = _ferkit("relabel", str(ds), "--rules", str(RULES))
    assert done.returncode == 0, done.stderr
    assert "smile_fake/b.png -> hard_case/b.png\tfolder smile_fake -> hard_case\tskipped (target exists)" in done.stdout
    assert sorted(p.name for p in (ds / "hard_case").iterdir()) == ["a.png", "b.png", "d.png", "g.png"]
    assert (ds / "hard_case" / "b.png").read_bytes() == b"already here" and (ds / "smile_fake" / "b.png").is_file()
    rows = {r["id"]: r for r in csv.DictReader(open(ds / "labels.csv"))}
    assert rows["d"]["file"] == "hard_case/d.png" and rows["d"]["label"] == "hard_case"
    log = next((ds / ".relabel").glob("*.jsonl"))
    assert len(log.read_text().splitlines()) == 3
    undone = _ferkit("relabel", str(ds), "--undo", str(log))
    assert undone.returncode == 0, undone.stderr
    after = _tree(ds)
    assert after.pop("hard_case/b.png") == b"already here" and after == before
    assert {r["id"]: r["file"] for r in csv.DictReader(open(ds / "labels.csv"))}["d"] == "questioning/d.png"


def test_without_a_csv_the_au_model_decides(tmp_path: Path) -> None:
    img = tmp_path / "ds" / "questioning" / "x.png"
    img.parent.mkdir(parents=True)
    shutil.copyfile(sorted((FER / "test" / "surprise").iterdir())[3], img)
    aus = rl._model_aus([img])[img]
    rule = rl.Rule("questioning", "hard_case", ["AU01", "AU02"], ["AU12"])
    moves = rl.plan(tmp_path / "ds", rl.Rules(rules=[rule]))
    assert set(aus) >= {"AU01", "AU02", "AU12"}
    assert len(moves) == int(rule.fires(aus))
