"""Running a fuzz case: in-process through ``main()`` (fast) or as ``python -m ferkit.cli`` (native crashes, hangs,
runaway memory), each with a time and a memory bound; snapshots that show whether inputs were changed; and the
verdict of the contract in :mod:`registry`."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from .conftest import CLI_MODULE, cli_main, package_src
from .registry import FuzzCase, Outcome

MB = 1 << 20
HASH_LIMIT = 256 * MB  # larger setup files are compared by size and modification time


class CaseTimeout(BaseException):
    """Raised by the alarm when an in-process case runs past its bound."""


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _bounded(seconds: float, memory_mb: int) -> Iterator[None]:
    """Raise :class:`CaseTimeout` after ``seconds``; let the address space grow by at most ``memory_mb`` (so a runaway
    allocation is a MemoryError here instead of the kernel killing the test process)."""

    def alarm(signum: int, frame: object) -> None:
        raise CaseTimeout(f"still running after {seconds} s")

    old_handler = signal.signal(signal.SIGALRM, alarm)
    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_bytes() + memory_mb * MB
    if old_limit[1] != resource.RLIM_INFINITY:
        limit = min(limit, old_limit[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, old_limit[1]))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, old_limit)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def _like_a_console_run() -> Iterator[None]:
    """Warnings and log records reach stderr as they would in a terminal (pytest otherwise swallows them)."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
        for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=cat)
        warnings.showwarning = _show_warning
        root.handlers = []
        try:
            yield
        finally:
            root.handlers = handlers


def run_inprocess(args: Sequence[str | Path], tmp: Path, case: FuzzCase, capfd) -> Outcome:
    """``ferkit ARGS`` through ``main()`` with ``tmp`` as the current folder; output captured at the fd level (native
    libraries' messages count as stderr lines too)."""
    main = cli_main()
    old_argv, old_cwd = sys.argv, os.getcwd()
    capfd.readouterr()
    code: int | None = None
    exc_text = None
    timed_out = False
    start = time.monotonic()
    sys.argv = ["ferkit", *map(str, args)]
    os.chdir(tmp)
    try:
        with _like_a_console_run(), _bounded(case.timeout, case.memory_mb):
            main()
        code = 0
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:  # sys.exit("message"): Python prints it and exits 1
            sys.stderr.write(f"{e.code}\n")
            code = 1
    except CaseTimeout:
        timed_out = True
    except BaseException:
        exc_text = traceback.format_exc()
        code = 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    seconds = time.monotonic() - start
    out, err = capfd.readouterr()
    if exc_text:
        err += exc_text
    return Outcome(code, out, err, seconds, tmp, timed_out=timed_out, exception=exc_text)


def run_subprocess(args: Sequence[str | Path], tmp: Path, case: FuzzCase) -> Outcome:
    """``python -m ferkit.cli ARGS`` in ``tmp`` with an address-space limit; killed (whole group) at the bound."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(package_src()), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("COLUMNS", "200")
    limit = (1024 + case.memory_mb) * MB  # the interpreter with onnxruntime and MediaPipe loaded needs < 1 GB

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", CLI_MODULE, *map(str, args)],
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=limits,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=case.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    seconds = time.monotonic() - start
    return Outcome(
        None if timed_out else proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        seconds,
        tmp,
        timed_out=timed_out,
    )


# --- inputs unchanged ---------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str]:
    """relative path → content hash (files), link target (symlinks) or "dir"; FIFOs and sockets are never opened."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        d = Path(dirpath)
        for name in dirnames + filenames:
            p = d / name
            rel = os.fsdecode(p.relative_to(root).as_posix().encode("utf-8", "surrogateescape"))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file() and p.stat().st_size > HASH_LIMIT:  # e.g. a sparse 64 GiB file: size and time only
                st = p.stat()
                out[rel] = f"size:{st.st_size}:{st.st_mtime_ns}"
            elif p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = h.hexdigest()
            else:
                out[rel] = "special"
    return out


def stat_snapshot(dirs: Sequence[Path]) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file in ``dirs`` (cheap: the bundled model folders)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for d in dirs for p in sorted(d.rglob("*"))}


def changed_inputs(before: dict[str, str], after: dict[str, str], mutable: Sequence[str]) -> list[str]:
    """Setup files that were modified or removed (those matching a ``mutable`` pattern excepted)."""
    bad = []
    for rel, digest in before.items():
        if any(fnmatch.fnmatch(rel, pat) for pat in mutable):
            continue
        if after.get(rel) != digest:
            bad.append(f"{rel} {'removed' if rel not in after else 'changed'}")
    return bad


# --- the verdict --------------------------------------------------------------------------------------------------

#: Signals that mean the process died in native code.
NATIVE_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}


def classify(case: FuzzCase, o: Outcome, changed: list[str]) -> tuple[str, str]:
    """("pass", "") or (failure class, what happened). Classes: hang, native_crash, memory, traceback, messy_error,
    silently_wrong, lost_or_duplicated, wrong_exit."""
    if o.timed_out:
        return "hang", f"still running after {case.timeout:.0f} s (killed)"
    if o.code is not None and o.code < 0:
        sig = signal.Signals(-o.code)
        what = "native_crash" if sig in NATIVE_SIGNALS else "memory" if sig == signal.SIGKILL else "native_crash"
        return what, f"killed by {sig.name}; stderr tail: {o.stderr[-300:]!r}"
    if "MemoryError" in o.stderr or "std::bad_alloc" in o.stderr:
        return "memory", "ran out of its memory bound: " + _tb_summary(o.stderr)
    if "Traceback" in o.stderr or o.exception:
        return "traceback", _tb_summary(o.stderr)
    if changed:
        return "lost_or_duplicated", "input files changed: " + ", ".join(changed)
    lines = o.stderr_lines
    if case.expect == "clean_exit":
        if o.code not in (0, 1, 2):
            return "wrong_exit", f"exit {o.code}; stderr tail {o.stderr[-400:]!r}"
        if case.check is not None:
            try:
                case.check(o)
            except AssertionError as e:
                return case.wrong, f"exit {o.code} but output wrong: {e}"
            except Exception as e:
                return case.wrong, f"exit {o.code} but output unreadable: {type(e).__name__}: {e}"
        return "pass", ""
    if case.expect == "help":
        if o.code in (0, 2) and "usage" in (o.stdout + o.stderr).lower():
            return "pass", ""
        return "wrong_exit", f"exit {o.code}, no usage text"
    if o.code == 0:
        if case.expect == "usage_error":
            last = (lines or [""])[-1]
            return case.wrong, f"exit 0 where a refusal (exit 2) was expected; last stderr line {last[-200:]!r}"
        if case.check is not None:
            try:
                case.check(o)
            except AssertionError as e:
                return case.wrong, f"exit 0 but output wrong: {e}"
            except Exception as e:
                return case.wrong, f"exit 0 but output unreadable: {type(e).__name__}: {e}"
        return "pass", ""
    if o.code == 2:
        if case.expect == "ok":
            return "wrong_exit", f"exit 2, expected success: {o.stderr.strip()[-300:]!r}"
        if len(lines) != 1:
            return "messy_error", f"exit 2 with {len(lines)} stderr lines: {o.stderr[-400:]!r}"
        if case.error_match and not re.search(case.error_match, lines[0], re.I):
            return "wrong_message", f"error line {lines[0]!r} does not match /{case.error_match}/"
        return "pass", ""
    return "wrong_exit", f"exit {o.code}; stderr tail {o.stderr[-400:]!r}"


_PLAIN_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_RICH_FRAME = re.compile(r"(/\S+\.py):(\d+) in (\S+)")


def tb_info(text: str) -> dict[str, str]:
    """The first and last line of a (plain or rich) traceback, the frame that raised and the innermost ferkit frame."""
    lines = [ln.strip(" │╭╰─❱") for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    frames = []
    for ln in lines:
        m = _PLAIN_FRAME.search(ln) or _RICH_FRAME.search(ln)
        if m:
            frames.append(f"{m.group(1)}:{m.group(2)} in {m.group(3)}")
    first = re.sub(r"[─╮╯ ]+$", "", next((ln for ln in lines if "Traceback" in ln), ""))
    last = lines[-1] if lines else ""
    ours = [f for f in frames if "/ferkit/" in f and "/tests/fuzz/" not in f]
    short = [re.sub(r"^.*/(src/ferkit/|site-packages/)", r"\1", f) for f in (frames[-1:] + ours[-1:])]
    return {
        "first": first[:200],
        "last": last[:400],
        "raised_at": short[0] if frames else "",
        "ferkit_at": short[-1] if ours else "",
    }


def _tb_summary(text: str) -> str:
    t = tb_info(text)
    where = t["ferkit_at"] or t["raised_at"] or "(no frame)"
    return f"{t['first'] or 'Traceback'} … {where} … {t['last']}"
