"""``ferkit analyze --live SOURCE``: the live branch of the analyze command (see :mod:`ferkit.analysis.live`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from ferkit.cli.app import console
from ferkit.errors import InputError
from ferkit.media.files import locked_output
from ferkit.media.live import resolve_source

if TYPE_CHECKING:
    from ferkit.analysis.options import AnalyzeOptions
    from ferkit.analysis.setup import ModelSetup

LIVE_HELP = (
    "Analyse a live source instead of files: a camera ('0' = the first; '/dev/video0'), a stream URL PyAV opens "
    "(rtsp://, http://, udp://, ...) or a video file played at its own rate. The newest frame is processed and stale "
    "ones dropped, so latency stays bounded; records (with latency_ms and dropped) are appended as they come, in "
    "jsonl or csv. Stops at the end of the stream, --max-frames, --duration or Ctrl-C (records kept, exit 0). Live "
    "output cannot be resumed (--resume is refused)."
)


def default_live_output(source: str, fmt: str) -> Path:
    """``./ferkit-results/live_<name>.<format>``: ``<name>`` from the file, device or URL (``camera0`` for ``0``)."""
    from ferkit.api import RESULTS_DIR

    tail = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", source).rstrip("/").rsplit("/", 1)[-1]
    stem = Path(tail.split("?", 1)[0]).stem
    name = f"camera{source}" if source.isdigit() else re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "stream"
    return RESULTS_DIR / f"live_{name}.{fmt}"


def analyze_live(
    source: str | None,
    paths: list[Path],
    output: Path | None,
    fmt: str,
    setup: ModelSetup,
    options: AnalyzeOptions,
    fps: float | None,
    resume: bool,
    plots: bool,
    max_frames: int | None,
    duration: float | None,
) -> None:
    """Run ``analyze --live`` (``setup``/``options``: the command's ModelSetup and AnalyzeOptions) and print its
    summary; ``--max-frames``/``--duration`` without ``--live``, or inputs beside it, are refused."""
    from ferkit.analysis.live import check_live_options, run_live
    from ferkit.analysis.setup import make_analyzer

    if source is None:
        raise InputError("--max-frames and --duration apply to --live only")
    if paths:
        raise InputError(f"--live {source} takes no other inputs, got {', '.join(map(str, paths))}")
    check_live_options(fmt, max_frames, duration, resume)
    resolve_source(source)  # a missing file or an empty name: refused before the models load
    out = output if output is not None else default_live_output(source, fmt)
    inputs = [Path(source)] if Path(source).is_file() else []
    analyzer = make_analyzer(setup, options)
    with locked_output(out, "--output", inputs=inputs):
        summary = run_live(source, analyzer, out, fmt, max_frames, duration, fps, handle_signals=True)
    typer.echo(str(out))
    if plots:
        from ferkit.analysis.plots import output_plots

        try:
            for p in output_plots(out, fmt):
                console.print(f"plot: {escape(str(p))}")
        except Exception as e:
            summary.warnings.append(f"plots for {out} failed: {e}")
    lat = summary.latency()
    console.print(f"{summary.records} records ({summary.faces} faces, {summary.no_face} frames without a face)")
    console.print(
        f"live: {summary.processed} frames processed, {summary.dropped} dropped as stale, {summary.arrived} arrived "
        f"in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s); latency ms median {lat['median']}, p95 "
        f"{lat['p95']}, max {lat['max']}; stopped by {summary.stopped_by}"
    )
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
