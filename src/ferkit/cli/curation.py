"""Curation commands of the ``ferkit`` CLI: mine, queue stats, curate, relabel (see docs/curation.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ferkit.cli.app import app, console, path_argument, path_option, progress
from ferkit.errors import InputError
from ferkit.models.loading import DEFAULT_MODEL

queue_app = typer.Typer(no_args_is_help=True, help="Inspect a mining queue.")
app.add_typer(queue_app, name="queue")


def _parse_fps(value: str) -> float | None:
    from ferkit.cli.analysis import _parse_fps as parse

    return parse(value)


@app.command()
def mine(
    sources: list[Path] = path_argument(..., help="Videos, images or folders to mine."),
    queue: Path = path_option(..., "--queue", help="Queue folder (made if missing; rerun to continue or add)."),
    model: list[str] = typer.Option(
        [DEFAULT_MODEL], "--model", help="Model name or folder; repeat to run several (they disagree: a reason)."
    ),
    aus: bool = typer.Option(False, "--aus", help="Also action units, speaking and hard-case rules (slower)."),
    fps: str = typer.Option("5", help="Video sampling rate in frames per second, or 'all'."),
    detector: str = typer.Option("yunet", help="yunet, yunet_small, blazeface, blazeface_full, mesh or haar."),
    cap: int = typer.Option(200, min=0, help="Faces kept per source at most, by priority (0: no cap)."),
    min_confidence: float = typer.Option(0.5, min=0.0, max=1.01, help="Keep faces the model is less sure of."),
    max_entropy: float = typer.Option(0.75, min=0.0, max=1.0, help="Keep faces above this normalised entropy."),
    static_seconds: float = typer.Option(
        3.0, min=0.1, max=3600.0, help="Drop tracks whose face does not move for this long (posters, paused screens)."
    ),
    min_face: int = typer.Option(40, min=0, help="Drop faces narrower than this (pixels)."),
    dedupe_bits: int = typer.Option(
        6, min=-1, max=64, help="Drop a face within this perceptual-hash distance of one kept from its track (-1: off)."
    ),
    checkpoint_every: float = typer.Option(
        2.0, min=0.0, max=3600.0, help="Seconds of video work between resume checkpoints (a rerun continues there)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's counts as JSON on stdout."),
) -> None:
    """Analyse videos and keep the faces worth a human look (low confidence, disagreement, hard cases, flicker,
    speech) in QUEUE/queue.sqlite with an aligned crop and a context thumbnail each."""
    from ferkit.curation.filters import MineRules
    from ferkit.curation.mine import MineOptions
    from ferkit.curation.mine import mine as run

    rules = MineRules(
        min_confidence=min_confidence,
        max_entropy=max_entropy,
        static_seconds=static_seconds,
        min_face=min_face,
        dedupe_bits=dedupe_bits,
    )
    opts = MineOptions(_parse_fps(fps), tuple(model), aus, detector, cap or None, rules, checkpoint_every)
    with progress() as bar:
        task = bar.add_task("mining", total=None)

        def tick(source: str, t: float) -> None:
            bar.update(task, description=f"mining {Path(source).name} {t:6.1f}s", advance=1)

        summary = run(sources, queue, opts, progress=tick)
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    dropped = ", ".join(f"{k} {v}" for k, v in summary.dropped.most_common()) or "none"
    console.print(
        f"{summary.sources} source(s) mined ({summary.already_done} already done, {summary.resumed} continued): "
        f"{summary.faces_seen} faces, "
        f"{summary.candidates} candidates, {summary.kept} kept; dropped: {escape(dropped)}"
    )
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    for _path, why in summary.skipped:
        console.print(f"[yellow]skipped:[/] {escape(why)}")


@queue_app.command("stats")
def queue_stats(
    queue: Path = path_argument(..., help="Queue folder made by `ferkit mine`."),
    out: Path | None = path_option(None, "--out", help="Folder for stats.json, summary.png, summary.html."),
    as_json: bool = typer.Option(False, "--json", help="Print the counts as JSON on stdout (nothing written)."),
) -> None:
    """Counts by reason, source, predicted class and AU pattern, and what the filters dropped."""
    from ferkit.curation.queue import Queue
    from ferkit.curation.stats import queue_stats as stats
    from ferkit.curation.stats import write_summary
    from ferkit.media.files import check_out_dir

    with Queue(queue) as q:
        if as_json:
            typer.echo(json.dumps(stats(q), indent=2))
            return
        folder = check_out_dir(out if out is not None else queue / "stats", "--out")
        for kind, path in write_summary(q, folder).items():
            console.print(f"{kind}: {escape(str(path))}")


@app.command()
def curate(
    queue: Path = path_argument(..., help="Queue folder made by `ferkit mine`."),
    dataset: Path | None = path_option(None, "--dataset", help="Folder `export` writes <label>/<id>.png into."),
    taxonomy: str = typer.Option("extended12", help="Taxonomy name or TOML file of the labels."),
    host: str = typer.Option("127.0.0.1", help="Address to serve on (default: this machine only)."),
    port: int = typer.Option(8765, help="Port to serve on."),
    export_only: bool = typer.Option(False, "--export", help="Export the labels given so far and exit (no server)."),
) -> None:
    """Label the queue in a local web page (keyboard: number keys and letters, undo, skip, accept the guess)."""
    from ferkit.curation.export import export
    from ferkit.curation.queue import Queue
    from ferkit.curation.server import check_port, serve
    from ferkit.labels.taxonomy import load_taxonomy
    from ferkit.media.files import check_out_dir

    tax = load_taxonomy(taxonomy)
    if dataset is not None:
        check_out_dir(dataset, "--dataset", inputs=[queue])
    with Queue(queue) as q:
        if export_only:
            if dataset is None:
                raise InputError("--export needs --dataset")
            s = export(q, dataset, tax)
            console.print(f"exported {s.written} new image(s), {s.already} already there; {escape(str(s.csv))}")
            if s.changed:
                console.print(f"[yellow]{len(s.changed)} relabelled since an earlier export: left as exported[/]")
            return
        check_port(host, port)
        console.print(f"labelling {escape(str(queue))} at http://{host}:{port}/ (Ctrl-C to stop)")
        serve(q, tax, dataset, host, port)


@app.command()
def relabel(
    dataset: Path = path_argument(..., help="A <label>/<image> dataset folder (e.g. from `curate --export`)."),
    rules: Path | None = path_option(None, "--rules", help="Rules TOML (default: the shipped relabel.toml)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report the moves."),
    undo: Path | None = path_option(None, "--undo", help="Reverse the moves of this log (DATASET/.relabel/*.jsonl)."),
) -> None:
    """Move or copy images between labels by folder aliases and AU rules; every move is reported and logged."""
    from importlib import resources

    from ferkit.curation import relabel as rl

    if undo is not None:
        moves = rl.undo(dataset, undo)
    else:
        path = rules or Path(str(resources.files("ferkit").joinpath("assets/curate/relabel.toml")))
        r = rl.load_rules(path)
        moves = rl.plan(dataset, r)
        if not dry_run:
            log = rl.apply(dataset, moves, r.mode)
    for m in moves:
        state = "would move" if dry_run else ("done" if m.done else f"skipped ({m.problem})")
        typer.echo(f"{m.src} -> {m.dst}\t{m.why}\t{state}")
    console.print(f"{len(moves)} move(s){' planned' if dry_run else ''}")
    if undo is None and not dry_run:
        console.print(f"log: {escape(str(log))} (undo with --undo)")
