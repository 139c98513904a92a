"""The ``ferkit`` command line: analyze, evaluate, models, demo."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ferkit.errors import FerkitError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline facial expression recognition.")
console = Console(stderr=True, soft_wrap=True)


def _parse_fps(value: str) -> float | None:
    if value.strip().lower() == "all":
        return None
    try:
        fps = float(value)
    except ValueError:
        raise InputError(f"--fps must be a number or 'all', got {value!r}") from None
    if fps <= 0:
        raise InputError(f"--fps must be positive, got {value}")
    return fps


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@app.command()
def analyze(
    paths: list[Path] = typer.Argument(..., help="Images, folders of images, or videos."),
    fps: str = typer.Option("5", help="Video sampling rate in frames per second, or 'all' for every frame."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, csv or parquet."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="One file for all inputs (default: ./ferkit-results/<input name>.<format> per input).",
    ),
    model: str = typer.Option("ferkit", help="Registered model name or model folder."),
    crops: bool = typer.Option(False, "--crops", help="Each image already is a face crop: no detection."),
    detector: str = typer.Option("blazeface", help="blazeface, blazeface_full, mesh or haar."),
    detect_interval: float = typer.Option(
        0.3, help="Seconds between full face detections in video (optical-flow tracking in between; 0 = every frame)."
    ),
    plots: bool = typer.Option(True, help="Write timeline and distribution PNGs beside the output."),
    resume: bool = typer.Option(False, help="Continue an interrupted run: keep written records, skip their frames."),
) -> None:
    """Detect, align and classify faces; write one record per face per sampled frame."""
    from ferkit.api import run_analysis
    from ferkit.pipeline import AnalyzeOptions
    from ferkit.records import FaceRecord

    opts = AnalyzeOptions(fps=_parse_fps(fps), crops=crops, detector=detector, detect_interval=detect_interval)
    with _progress() as bar:
        task = bar.add_task("analysing", total=None)

        def tick(rec: FaceRecord) -> None:
            bar.update(task, description=f"analysing {Path(rec.source).name}", advance=1)

        summary = run_analysis(paths, output, fmt, model, opts, resume, plots, tick)
    for out in summary.outputs:
        typer.echo(str(out))
    for p in summary.plots:
        console.print(f"plot: {escape(str(p))}")
    console.print(f"{summary.records} records ({summary.faces} faces, {summary.no_face} frames without a face)")
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if summary.skipped:
        console.print(f"[yellow]skipped {len(summary.skipped)} bad file(s):[/]")
        for _path, why in summary.skipped:
            console.print(f"  {escape(why)}")


@app.command()
def evaluate(
    datasets: list[Path] = typer.Argument(..., help="Folders of <class>/<image> subfolders."),
    model: list[str] = typer.Option(["ferkit"], "--model", help="Model name or folder; repeat for several."),
    crops: bool = typer.Option(False, "--crops", help="Images are face crops (no detection)."),
    detector: str = typer.Option("blazeface", help="Detector for uncropped photos."),
    report_file: Path | None = typer.Option(None, "--report", help="Write the JSON report here."),
) -> None:
    """Score models on labelled folders: accuracy, macro-F1, per-class metrics, confusion matrix."""
    from ferkit.api import evaluate as evaluate_all
    from ferkit.models import EmotionModel, load_model

    models = [load_model(m) for m in model]  # load (and hash-check) every model before any work
    with _progress() as bar:

        def bar_for(m: EmotionModel, d: Path) -> Callable[[int], None]:
            task = bar.add_task(f"{m.name} on {d.name}", total=None)
            return lambda n: bar.advance(task, n)

        doc = evaluate_all(datasets, models, crops, progress=bar_for, detector=detector)
    blocks = doc["results"]
    table = Table("model", "dataset", "n", "accuracy", "macro-F1", "misses")
    for b in blocks:
        table.add_row(
            b["model"], b["dataset"], str(b["n"]), f"{b['accuracy']:.4f}", f"{b['macro_f1']:.4f}", str(b["misses"])
        )
    Console().print(table)
    for b in blocks:
        if b["skipped_classes"]:
            console.print(f"[yellow]{b['dataset']}: classes unknown to {b['model']} skipped:[/] {b['skipped_classes']}")
        if b["unreadable"]:
            console.print(f"[yellow]{b['dataset']}: {b['unreadable']} unreadable image(s) skipped[/]")
    if report_file:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(json.dumps(doc, indent=1))
        typer.echo(str(report_file))


@app.command()
def models() -> None:
    """List registered models."""
    from ferkit.models import MODEL_FOLDERS, load_model

    table = Table("name", "classes", "input", "folder")
    for name, folder in MODEL_FOLDERS.items():
        m = load_model(name)
        table.add_row(name, ", ".join(m.classes), f"{m.input_size}px {m.channels}", str(folder))
    Console().print(table)


@app.command()
def demo(
    out: Path = typer.Option(Path("ferkit-results/demo"), help="Folder for the sample inputs and results."),
) -> None:
    """Analyse a bundled public-domain sample (scikit-image's astronaut photo, and a short clip made from it)."""
    from ferkit.api import run_analysis
    from ferkit.demo import make_samples

    image, video = make_samples(out)
    summary = run_analysis([image, video], None, "jsonl", "ferkit", None, plots=True)
    for o in summary.outputs + summary.plots:
        typer.echo(str(o))


def main() -> None:
    """Entry point: user errors become one red line and exit code 2; Ctrl-C exits 130."""
    try:
        app(standalone_mode=False)
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


if __name__ == "__main__":
    main()
