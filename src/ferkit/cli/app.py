"""The one ``ferkit`` app every command module registers on, its console and progress bar, and :func:`main`."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ferkit.errors import FerkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline facial expression recognition.")
console = Console(stderr=True, soft_wrap=True)

#: OSErrors that mean the user's paths or disk cannot be used (exit 2), not a bug (exit 1).
USER_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.ENOSPC,
    errno.EROFS,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.EFBIG,
    errno.ENXIO,
    errno.ETXTBSY,
    errno.EBUSY,
}


def progress() -> Progress:
    """A transient rich progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (for bug reports)."),
) -> None:
    """Offline facial expression recognition."""
    # main() reads --debug from the command line itself, so it also applies to errors raised while parsing.


def nonempty_path(value: str | os.PathLike[str]) -> Path:
    """Typer parser of every path argument and option: ``Path('')`` is ``.``, so an empty string (an unset shell
    variable, say) would silently name the current folder; it is a usage error instead."""
    if not os.fspath(value):
        raise typer.BadParameter("an empty string is not a path")
    return Path(value)


def path_argument(default: Any = ..., **kwargs: Any) -> Any:
    """``typer.Argument`` for paths (one or a list) that refuses an empty string (:func:`nonempty_path`)."""
    return typer.Argument(default, parser=nonempty_path, **kwargs)


def path_option(default: Any, *param_decls: str, **kwargs: Any) -> Any:
    """``typer.Option`` for paths (one, optional, or repeated) that refuses an empty string (:func:`nonempty_path`)."""
    return typer.Option(default, *param_decls, parser=nonempty_path, **kwargs)


def one_line(message: object) -> str:
    """``message`` as one printable line: newlines, tabs and other control characters (from file names, say) are
    written as escapes, so an error is always exactly one line on stderr."""
    text = str(message).strip()
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text) or "(no message)"


def _debug_requested(argv: list[str]) -> bool:
    args = argv[: argv.index("--")] if "--" in argv else argv
    return "--debug" in args or os.environ.get("FERKIT_DEBUG", "") not in ("", "0")


def _fail(message: str, code: int) -> NoReturn:
    console.print(escape(one_line(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Entry point. Bad input (a :class:`FerkitError`, a usage error, an unusable path) is one line on stderr and exit
    code 2; any other exception is an internal error: one line and exit code 1; Ctrl-C exits 130. ``--debug`` (or
    ``FERKIT_DEBUG=1``) prints the traceback first."""
    import traceback

    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    debug = _debug_requested(sys.argv[1:])
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: records written so far are kept (rerun with --resume)")
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except NoArgsIsHelpError as e:
        typer.echo(e.format_message())
        sys.exit(2)
    except BaseException as e:
        if debug:
            traceback.print_exc()
        if isinstance(e, ClickException):
            _fail(f"error: {e.format_message()} (see ferkit --help)", 2)
        if isinstance(e, FerkitError):
            _fail(f"error: {e}", 2)
        if isinstance(e, OSError) and e.errno in USER_ERRNOS:  # the environment, not ferkit: unusable path, full disk
            where = e.filename if e.filename is not None else "output"
            _fail(f"error: {where}: {e.strerror or e}", 2)
        if isinstance(e, MemoryError):
            _fail("internal error: out of memory (rerun with --debug for the traceback)", 1)
        if not isinstance(e, Exception):
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", 1)
