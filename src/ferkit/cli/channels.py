"""Channel commands of the ``ferkit`` CLI: fuse (sync other channels' records with ferkit's by time, and fuse them)."""

from __future__ import annotations

from pathlib import Path

import typer

from ferkit.cli.app import app, console, path_argument, path_option
from ferkit.errors import InputError
from ferkit.media.files import OutputLock, atomic_write_text, check_writable


@app.command()
def fuse(
    channels: list[Path] = path_argument(..., help="ferkit records (face channel) and other channels' JSONL/CSV."),
    window: float = typer.Option(1.0, help="Fuse in consecutive windows of this many seconds."),
    nearest: float | None = typer.Option(
        None, help="Instead of windows: match each sample of the first channel to the nearest within this tolerance."
    ),
    weights: str | None = typer.Option(None, help="Channel weights by file stem, e.g. 'face=1,voice=0.5'."),
    face: str = typer.Option("largest", help="Face channel: 'largest' face per timestamp or a face_id."),
    threshold: float = typer.Option(0.5, help="Score a new label needs before the state machine switches."),
    hold: int = typer.Option(2, min=1, help="Consecutive rows a new label must lead before switching."),
    output: Path = path_option(Path("ferkit-results/fused.jsonl"), "--output", "-o", help="Fused rows (JSONL)."),
    plot: bool = typer.Option(True, help="Write a per-channel and fused timeline PNG beside the output."),
) -> None:
    """Align channels by timestamp and fuse them by weighted voting with flicker suppression."""
    from ferkit.analysis.channels import channel_name, fuse_files

    w = None
    if weights:
        try:
            w = {k.strip(): float(v) for k, v in (p.split("=") for p in weights.split(",") if p.strip())}
        except ValueError:
            raise InputError(f"--weights must look like 'face=1,voice=0.5', got {weights!r}") from None
    check_writable(output, "--output", inputs=channels)
    if plot:
        check_writable(output.with_suffix(".png"), "plot (--no-plot skips it)", inputs=channels)
    with OutputLock(output):
        fused = fuse_files(channels, window, nearest, w, int(face) if face.isdigit() else face, threshold, hold)
        atomic_write_text(output, fused.to_json(orient="records", lines=True, force_ascii=True))
    typer.echo(str(output))
    if plot:
        from ferkit.analysis.plots import plot_channels

        names = [channel_name(c) for c in channels]
        typer.echo(str(plot_channels(fused, names, output.with_suffix(".png"))))
    states = fused["state_label"].dropna()
    console.print(f"{len(fused)} rows; fused state switches {int((states != states.shift()).sum()) - 1} times")
