"""File safety shared by every stage (this is the bottom layer): pre-flight checks of output paths before the work,
atomic writes, an exclusive lock on an output being written, and the identity of a file whatever its spelling.

Every check raises :class:`~ferkit.errors.InputError` with one line that names the path and what is wrong.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ferkit.errors import InputError

__all__ = [
    "OutputLock",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_not_input",
    "check_out_dir",
    "check_writable",
    "file_key",
    "same_file",
    "source_identity",
]


def _name(path: Path | str) -> str:
    return os.fsdecode(path)


def _existing_parent(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (``InputError`` if a file is in the way)."""
    parent = path.parent
    while True:
        try:
            st = parent.stat()
        except FileNotFoundError:
            parent = parent.parent
            continue
        except NotADirectoryError:
            raise InputError(f"{_name(path)}: a parent of the output is a file, not a folder") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{_name(path)}: {_name(parent)} is a file, not a folder")
        return parent


def check_writable(path: Path | str, what: str = "output", inputs: Iterable[Path | str] = ()) -> Path:
    """Pre-flight check of an output file, before any work: the path is not a folder, FIFO or device, its folder
    exists or can be made (nothing but folders above it), that folder is writable, and the path is none of
    ``inputs`` (nor inside an input folder). Returns ``path`` as a :class:`Path`."""
    path = Path(path)
    if not _name(path) or path.name in ("", ".", ".."):
        raise InputError(f"{what} {_name(path)!r}: not a file name")
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise InputError(f"{_name(path)}: {what} is under a file, not a folder") from None
    except OSError as e:
        raise InputError(f"{_name(path)}: {what} cannot be used ({e.strerror})") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{_name(path)}: cannot write output: {what} is a folder, expected a file path")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{_name(path)}: {what} is not a regular file (a FIFO, socket or device)")
        if not os.access(path, os.W_OK):
            raise InputError(f"{_name(path)}: {what} is not writable")
    parent = _existing_parent(path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{_name(path)}: folder {_name(parent)} is not writable")
    check_not_input(path, inputs, what)
    return path


def check_out_dir(folder: Path | str, what: str = "output folder", inputs: Iterable[Path | str] = ()) -> Path:
    """Pre-flight check of an output folder: it is a folder (or can be made), writable, and not an input nor inside
    an input folder."""
    folder = Path(folder)
    try:
        st = folder.stat()
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise InputError(f"{_name(folder)}: {what} is under a file, not a folder") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{_name(folder)}: {what} is a file, not a folder")
    base = folder if st is not None else _existing_parent(folder)
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{_name(folder)}: {what} is not writable")
    check_not_input(folder, inputs, what)
    return folder


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare as written
        return path.absolute()


def check_not_input(output: Path | str, inputs: Iterable[Path | str], what: str = "output") -> None:
    """``InputError`` if ``output`` is one of ``inputs`` (any spelling, a link to it) or lies inside an input
    folder: writing it would destroy or change an input."""
    output = Path(output)
    out_real = _resolved(output)
    for inp in inputs:
        inp = Path(inp)
        if same_file(output, inp) or out_real == _resolved(inp):
            raise InputError(f"{_name(output)}: {what} is the input {_name(inp)}; choose another path")
        if inp.is_dir() and _resolved(inp) in out_real.parents:
            raise InputError(f"{_name(output)}: {what} is inside the input folder {_name(inp)}; choose another path")


def file_key(path: Path | str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of an existing file: the same for every spelling of it and every link to it (None when
    it cannot be read)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether ``a`` and ``b`` are the same existing file (same device and inode: links and any spelling)."""
    key = file_key(a)
    return key is not None and key == file_key(b)


def source_identity(path: Path | str) -> dict[str, object]:
    """What identifies an input across spellings and runs: resolved path, device/inode, size and mtime (a resumed
    run compares these to know it continues the same input, unchanged)."""
    path = Path(path)
    st = os.stat(path)
    return {
        "path": _name(_resolved(path)),
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` all or nothing: a temporary file in the same folder, fsync, then ``os.replace``
    (a crash or full disk leaves the old file, never half a new one). Makes the folder if needed."""
    path = Path(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise InputError(f"{_name(path)}: cannot write ({e.strerror}); the old file, if any, is unchanged") from e
        raise
    return path


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` of ``text`` (UTF-8; file names that are not UTF-8 are written as escapes)."""
    return atomic_write_bytes(path, text.encode(encoding, "backslashreplace"))


def _same_inode(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class OutputLock:
    """An exclusive, non-blocking lock on an output being written: ``fcntl.flock`` on ``<path>.lock``.

    ``with OutputLock(out): ...`` raises :class:`InputError` ("… is being written by another ferkit process") when
    another process holds it; the lock goes with the process (no stale locks after a crash), and the lock file is
    removed on a clean exit.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        import fcntl

        missing = [d for d in [self.lock_path.parent, *self.lock_path.parent.parents] if not d.exists()]
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._made = missing  # removed again on release when still empty (a refused run leaves no folders)
        for _ in range(100):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(f"{_name(self.path)}: is being written by another ferkit process") from None
            # The holder before us removes the lock file as it lets go: only a lock on the file still there counts.
            if _same_inode(self.lock_path, fd):
                self._fd = fd
                return self
            os.close(fd)
        raise InputError(f"{_name(self.path)}: could not lock {_name(self.lock_path)}")

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        for d in getattr(self, "_made", []):
            with contextlib.suppress(OSError):
                d.rmdir()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def locked_output(path: Path | str, what: str = "output", inputs: Iterable[Path | str] = ()) -> Iterator[Path]:
    """Pre-flight check plus lock: ``with locked_output(out, inputs=srcs) as p: ...write p...``."""
    p = check_writable(path, what, inputs)
    with OutputLock(p):
        yield p


def read_json_file(path: Path | str, what: str, limit: int, error: type[Exception] = InputError) -> object:
    """The JSON value in ``path`` (UTF-8, at most ``limit`` bytes, not nested without end); anything else — a folder,
    unreadable, too large, not UTF-8, not JSON — is one ``error`` naming the file and ``what`` it should be."""
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{path}: {what} is a folder, expected a JSON file")
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from None
    if len(raw) > limit:
        raise error(f"{path}: {what} is larger than {limit >> 20} MB")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 (byte {e.start})") from None
    except (ValueError, RecursionError) as e:
        raise error(f"{path}: {what} is not valid JSON ({str(e).splitlines()[0][:120]})") from None


def collect_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively) into image and video files; ``InputError`` for a missing path. A file reached
    twice (another spelling, a link, a folder and a file in it) is kept once, under its first spelling."""
    from ferkit.media.images import IMAGE_SUFFIXES
    from ferkit.media.video import VIDEO_SUFFIXES

    out: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            )
        elif p.exists():
            found = [p]
        else:
            raise InputError(f"{p}: no such file or folder")
        for f in found:
            key = file_key(f)
            if key in seen:
                continue
            if key is not None:
                seen.add(key)
            out.append(f)
    return out
