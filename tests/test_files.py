"""ferkit.media.files: output pre-flight checks, atomic writes, the output lock and file identity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferkit.errors import InputError
from ferkit.media.files import (
    OutputLock,
    atomic_write_text,
    check_out_dir,
    check_writable,
    same_file,
    source_identity,
)


def test_check_writable_refuses_folders_fifos_inputs_and_files_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"x")
    for path, needle in [
        (tmp_path / "d", "is a folder"),
        (tmp_path / "pipe", "not a regular file"),
        (tmp_path / "f" / "out.json", "under a file"),
        (tmp_path / "in" / ".." / "in" / "a.jpg", "the input"),
        (tmp_path / "in" / "new.jsonl", "inside the input folder"),
    ]:
        with pytest.raises(InputError, match=needle):
            check_writable(path, "--output", inputs=[tmp_path / "in", tmp_path / "in" / "a.jpg"])
    assert check_writable(tmp_path / "new" / "deeper" / "out.json") == tmp_path / "new" / "deeper" / "out.json"
    with pytest.raises(InputError, match="is a file"):
        check_out_dir(tmp_path / "f")


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "r.json"
    atomic_write_text(out, "one")
    atomic_write_text(out, "two\udcff")  # a lone surrogate (non-UTF-8 file name) is escaped, not an error
    assert out.read_text() == "two\\udcff"
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.json"]
    with pytest.raises(InputError):
        atomic_write_text("/dev/full", "x")


def test_output_lock_is_exclusive_across_processes_and_released(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with OutputLock(out):
        code = "from ferkit.media.files import OutputLock; import sys; OutputLock(sys.argv[1]).acquire()"
        r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=os.environ)
        assert r.returncode != 0 and "being written by another ferkit process" in r.stderr
    assert not (tmp_path / "out.jsonl.lock").exists()
    with OutputLock(out):  # free again
        pass


def test_same_file_and_identity_see_through_spellings_and_links(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.mp4").symlink_to(tmp_path / "v.mp4")
    assert same_file(tmp_path / "sub" / ".." / "v.mp4", tmp_path / "link.mp4")
    assert not same_file(tmp_path / "v.mp4", tmp_path / "missing")
    a, b = source_identity(tmp_path / "link.mp4"), source_identity(tmp_path / "sub" / ".." / "v.mp4")
    assert a == b and a["size"] == 1
