"""``ferkit synth``: synthetic training faces (``speech-action``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ferkit.cli.app import app, console, path_option, progress

synth_app = typer.Typer(no_args_is_help=True, help="Synthesise training faces.")
app.add_typer(synth_app, name="synth")


@synth_app.command("speech-action")
def speech_action(
    out: Path = path_option(..., "--out", help="Output folder: speech_action/*.png, manifest.csv, synth.json."),
    upper: list[Path] = path_option(
        ..., "--upper", help="Dataset folder(s) of <class>/<image> emotional faces (train splits only)."
    ),
    speech: list[Path] = path_option(
        ..., "--speech", help="Talking video(s): the mouths come from their speaking frames."
    ),
    n: int = typer.Option(2000, "--n", min=1, max=1_000_000, help="Number of composites."),
    size: int = typer.Option(48, "--size", min=16, max=1024, help="Output side in pixels (the training size)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (which images and which donor frames)."),
    classes: str = typer.Option(
        "", help="Upper-face classes to use, comma-separated (default: every emotion but neutral)."
    ),
    per_video: int = typer.Option(150, "--per-video", min=1, max=100_000, help="Donor frames per video at most."),
) -> None:
    """Composite the upper face of emotional faces over the lower face of neutral speaking frames (speech_action)."""
    from ferkit.curation.speech_action import SynthSettings, synthesize

    settings = SynthSettings(
        upper=[str(p) for p in upper], speech=[str(p) for p in speech],
        classes=[c.strip() for c in classes.split(",") if c.strip()], n=n, size=size, seed=seed, per_video=per_video,
    )  # fmt: skip
    with progress() as bar:
        task = bar.add_task("synthesising", total=n)

        def tick(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done)

        summary = synthesize(settings, out, tick)
    speakers = ", ".join(f"{k} {v}" for k, v in sorted(summary.speakers.items()))
    console.print(
        f"{summary.made + summary.resumed} composites in {out / 'speech_action'} ({summary.resumed} from an earlier "
        f"run) from {len(summary.speakers)} speakers ({speakers}); skipped: {summary.skipped or 'none'}",
        highlight=False,
    )
