"""The one ``ferkit`` app every command module registers on, its console and progress bar, and :func:`main`."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ferkit.errors import FerkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline facial expression recognition.")
console = Console(stderr=True, soft_wrap=True)


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


def main() -> None:
    """Entry point: user errors become one red line and exit code 2; Ctrl-C exits 130."""
    try:
        code = app(standalone_mode=False)  # returns typer.Exit's code instead of exiting
        if isinstance(code, int) and code:
            sys.exit(code)
    except FerkitError as e:
        console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: records written so far are kept (rerun with --resume)")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors etc.
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Abort):
            sys.exit(130)
        raise
