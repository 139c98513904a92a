"""``ferkit corpus``: analyse a film collection (run), report it, compare two models' runs, query the Parquet parts."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape

from ferkit.cli.app import app, console, path_argument, path_option
from ferkit.errors import InputError
from ferkit.models.loading import DEFAULT_MODEL

corpus_app = typer.Typer(no_args_is_help=True, help="Film collections: run, report, compare, query.")
app.add_typer(corpus_app, name="corpus")


def _sampling(every: int | None, fps: str | None) -> tuple[int | None, float | None]:
    """``--every N`` or ``--fps R`` (not both); every 100th frame when neither is given."""
    if every is not None and fps is not None:
        raise InputError("--every and --fps exclude each other: give one sampling")
    if fps is None:
        return (every if every is not None else 100), None
    from ferkit.cli.analysis import _parse_fps

    return None, _parse_fps(fps)


class _Bar:
    """One progress bar over the collection's runtime, with ETA and which tasks (videos, or segments of long ones)
    run, are done or failed."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.seen: dict[str, float] = {}
        self.done = self.failed = self.total = 0

    def planned(self, jobs: list, seconds: float) -> None:
        self.total = len(jobs)
        self.task = self.bar.add_task("corpus", total=max(seconds, 1e-9), status=self._status())
        self.bar.start()

    def _status(self) -> str:
        running = [v for v, s in self.seen.items() if s >= 0][:3]
        return f"{self.done}/{self.total} done, {self.failed} failed" + (
            f"; running {', '.join(running)}" if running else ""
        )

    def progress(self, task: str, seconds: float) -> None:
        step = max(0.0, seconds - self.seen.get(task, 0.0))
        self.seen[task] = seconds
        self.bar.update(self.task, advance=step, status=self._status())

    def result(self, r, attempt: int, final: bool) -> None:
        from ferkit.cli.app import one_line

        if r.ok or final:
            self.seen[r.task] = -1.0
            self.done, self.failed = self.done + r.ok, self.failed + (not r.ok)
        if not r.ok:
            what = "failed" if final else f"failed (attempt {attempt}, retrying)"
            console.print(f"[yellow]{escape(r.task)}[/] {what}: {escape(one_line(r.error))}", highlight=False)
        self.bar.update(self.task, status=self._status())


@corpus_app.command("run")
def run_cmd(
    manifest: Path = path_argument(..., help="CSV or YAML manifest: path, title, and any columns (genre, year, …)."),
    out: Path = path_option(..., "--out", "-o", help="Run folder: Parquet parts, run log, settings."),
    every: int | None = typer.Option(None, help="Analyse every N-th frame (default 100; sparse decoding)."),
    fps: str | None = typer.Option(None, help="Or sample at this many frames per second."),
    model: list[str] = typer.Option([DEFAULT_MODEL], "--model", help="Model name or folder; repeat for several."),
    detector: str = typer.Option("yunet", help="yunet, yunet_small, blazeface, blazeface_full, mesh or haar."),
    no_calibration: bool = typer.Option(False, "--no-calibration", help="Use raw model scores."),
    engine: str = typer.Option("local", help="local (a process pool) or ray."),
    workers: int = typer.Option(max(1, (os.cpu_count() or 2) // 2), help="Worker processes (Ray: local CPUs)."),
    retries: int = typer.Option(1, help="More attempts for a video that failed for a reason other than bad input."),
    address: str | None = typer.Option(None, help="Ray cluster address ('auto': the running one); else local Ray."),
    root: Path | None = path_option(None, help="Folder relative manifest paths start from (default: its folder)."),
    checkpoint_every: float = typer.Option(
        2.0, min=0.0, max=3600.0, help="Seconds of work between resume checkpoints of the video being analysed."
    ),
    segment_minutes: float | None = typer.Option(
        None,
        help="Split a video longer than this into segments analysed as tasks of their own (--every runs; default "
        "10; 0: never). Face tracks start afresh at each segment.",
    ),
) -> None:
    """Analyse every video of MANIFEST into one Parquet part each; a rerun skips finished videos and resumes a
    killed one."""
    from ferkit.corpus.jobs import RunSpec
    from ferkit.corpus.run import RunEvents, corpus_run

    if address is not None and engine != "ray":
        raise InputError("--address applies to --engine ray only")
    n, rate = _sampling(every, fps)
    if segment_minutes and rate is not None:
        raise InputError("--segment-minutes applies to --every sampling only (an --fps run analyses whole videos)")
    minutes = RunSpec.segment_minutes if segment_minutes is None else segment_minutes
    spec = RunSpec(tuple(model), not no_calibration, n, rate, detector, checkpoint_every, minutes)
    bar = _Bar()
    try:
        summary = corpus_run(
            manifest,
            out,
            spec,
            engine,
            workers,
            retries,
            address,
            root,
            RunEvents(bar.planned, bar.progress, bar.result),
        )
    finally:
        bar.bar.stop()
    rate_note = f", {summary.video_seconds / max(summary.seconds, 1e-9):.1f}x real time" if summary.done else ""
    console.print(
        f"{len(summary.done)} analysed, {len(summary.skipped)} already done, {len(summary.failed)} failed "
        f"({summary.rows} rows, {summary.faces} with a face; {summary.seconds:.1f} s{rate_note}) -> {escape(str(out))}",
        highlight=False,
    )
    if summary.failed:
        for vid, err in summary.failed:
            console.print(f"  [red]failed[/] {escape(vid)}: {escape(err)}", highlight=False)
        raise typer.Exit(1)


@corpus_app.command("report")
def report_cmd(
    run: Path = path_argument(..., help="Run folder of 'ferkit corpus run'."),
    out: Path | None = path_option(None, "--out", "-o", help="Folder for the report (default: the run folder)."),
    group: str | None = typer.Option(None, help="Manifest column to group by (default: its first extra column)."),
) -> None:
    """Emotion shares, timelines, change points, diversity and faces per minute: Markdown, HTML, PNG and CSV."""
    from ferkit.corpus.report import corpus_report

    r = corpus_report(run, out, group)
    console.print(f"report of {len(r.videos)} videos -> {escape(str(r.files[-1]))} (+ {len(r.files) - 1} files)")


@corpus_app.command("compare")
def compare_cmd(
    run_a: Path = path_argument(..., help="Run folder (model A; or one run made with several --model)."),
    run_b: Path | None = path_argument(None, help="Run folder of model B over the same videos."),
    group: str | None = typer.Option(None, help="Manifest column to test per group (default: its first)."),
    out: Path | None = path_option(None, "--out", "-o", help="Output folder (default: RUN_A/compare)."),
) -> None:
    """Paired t-test and Wilcoxon signed-rank per emotion across videos, effect sizes, Holm correction, CIs."""
    from ferkit.corpus.compare import compare_runs

    cmp = compare_runs(run_a, run_b, group, out)
    t = cmp.table[cmp.table["scope"] == "all"]
    console.print(f"{cmp.name_b} vs {cmp.name_a} over {int(t['n'].iloc[0])} videos (Holm-corrected p):")
    for _, r in t.iterrows():
        tested = r["p_t_holm"] == r["p_t_holm"] and r["p_t_holm"] is not None
        detail = f"p_t={r['p_t_holm']:.3g} p_w={r['p_w_holm']:.3g} d_z={r['d_z']:+.2f}" if tested else r["note"]
        console.print(f"  {r['emotion']:>9}: {r['mean_diff']:+.3f}  {escape(str(detail))}", highlight=False)
    console.print(f"-> {escape(str(cmp.files[-1]))}")


@corpus_app.command("query")
def query_cmd(
    run: Path = path_argument(..., help="Run folder of 'ferkit corpus run'."),
    sql: str = typer.Argument(
        ..., help="SQL over the view 'records', e.g. \"SELECT title, count(*) FROM records GROUP BY 1\"."
    ),
    csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
) -> None:
    """Run DuckDB SQL over the run's Parquet parts (view 'records')."""
    from ferkit.corpus.query import query

    frame = query(run, sql)
    if csv:
        typer.echo(frame.to_csv(index=False), nl=False)
    else:
        typer.echo(frame.to_string(index=False, max_rows=200))
