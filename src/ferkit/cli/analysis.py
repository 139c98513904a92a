"""Analysis commands of the ``ferkit`` CLI: analyze (its ``--live`` branch: :mod:`ferkit.cli.live`), evaluate,
calibrate, models, demo."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ferkit.cli.app import app, console, path_argument, path_option, progress
from ferkit.cli.live import LIVE_HELP, analyze_live
from ferkit.errors import InputError
from ferkit.media.files import OutputLock, atomic_write_text, check_out_dir, check_writable
from ferkit.models.loading import DEFAULT_MODEL


def _parse_fps(value: str, option: str = "--fps") -> float | None:
    if value.strip().lower() == "all":
        return None
    from ferkit.media.video import check_fps

    try:
        fps = float(value)
    except ValueError:
        raise InputError(f"{option} must be a number or 'all', got {value!r}") from None
    check_fps(fps, value, option)
    return fps


def _calibration(calibration: Path | None, no_calibration: bool, models: int = 1) -> bool | Path:
    """The ``calibration`` argument of the API from ``--calibration FILE`` / ``--no-calibration``."""
    if calibration is not None and no_calibration:
        raise InputError("--calibration and --no-calibration exclude each other")
    if calibration is not None and models > 1:
        raise InputError("--calibration FILE applies to one --model; calibrations beside model folders load anyway")
    if calibration is not None and not calibration.is_file():
        raise InputError(f"{calibration}: calibration file not found")
    return calibration if calibration is not None else not no_calibration


@contextlib.contextmanager
def _guarded_outputs(paths: list[Path], output: Path | None, fmt: str) -> Iterator[None]:
    """Before any work: every output analyze will write is usable (not a folder/FIFO, not an input, nor inside an
    input folder) and locked against a second ferkit process for the whole run."""
    from ferkit.api import default_outputs
    from ferkit.media.images import IMAGE_SUFFIXES
    from ferkit.media.video import VIDEO_SUFFIXES

    outs = [output] if output is not None else default_outputs(paths, fmt)
    files = [p for p in paths if not p.is_dir()]
    with contextlib.ExitStack() as stack:
        for out in outs:
            # inside an input folder is fine (./ferkit-results beside `ferkit analyze .`) unless it would be an input
            media = out.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
            check_writable(out, "--output", inputs=paths if media else files)
            stack.enter_context(OutputLock(out))
        yield


def _check_gate_threshold(gate_threshold: float) -> None:
    """Refused even without --gate (AnalyzeOptions refuses --detector and --detect-interval even with --crops)."""
    if not 0 <= gate_threshold <= 1:  # also refuses nan
        raise InputError(f"--gate-threshold must be a probability in [0, 1], got {gate_threshold}")


def _check_report_outputs(report_file: Path | None, out_dir: Path | None, datasets: list[Path]) -> None:
    if report_file is not None:
        check_writable(report_file, "--report", inputs=datasets)
    if out_dir is not None:
        check_out_dir(out_dir, "--out-dir", inputs=datasets)
        for name in ("report.json", "report.md"):
            check_writable(out_dir / name, "--out-dir file")


CALIBRATION_HELP = "Calibration file (per-class biases + temperature) to apply instead of the model folder's own."
TTA_HELP = (
    "Test-time augmentation: none, flip (average with the mirror image: 2x model compute, +0.9 points FER2013 test "
    "accuracy), flip_shift (10 views) or auto (flip for images and crops, none for video, to keep every-frame "
    "analysis fast)."
)
NO_CALIBRATION_HELP = "Use raw model scores: ignore the model folder's calibration.json."


@app.command()
def analyze(
    paths: list[Path] | None = path_argument(None, help="Images, folders of images, or videos (none with --live)."),
    fps: str | None = typer.Option(
        None,
        help="Video sampling rate in frames per second, or 'all' for every frame (default 5). With --live: sample "
        "at most this many frames per second of stream time (default: as many as the analysis keeps up with).",
    ),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, csv or parquet."),
    output: Path | None = path_option(
        None,
        "--output",
        "-o",
        help="One file for all inputs (default: ./ferkit-results/<input name>.<format> per input).",
    ),
    model: list[str] = typer.Option(
        [DEFAULT_MODEL],
        "--model",
        help="Registered model name, model folder or ONNX spec .json; repeat to run several (the first is primary).",
    ),
    fusion: str | None = typer.Option(
        None, help="Fuse several models' outputs: majority, soft or reliability (default: the first model's output)."
    ),
    reliability: Path | None = path_option(
        None, help="Evaluate report (ferkit evaluate --report) whose per-class F1 weights --fusion reliability."
    ),
    gate: str | None = typer.Option(
        None, help="Binary gate model (name, folder or spec .json): faces it scores below the threshold get no emotion."
    ),
    gate_class: str | None = typer.Option(None, help="The gate's class that must reach --gate-threshold."),
    gate_threshold: float = typer.Option(0.5, help="Gate faces whose P(--gate-class) is below this."),
    crops: bool = typer.Option(False, "--crops", help="Each image already is a face crop: no detection."),
    detector: str = typer.Option(
        "yunet", help="yunet, yunet_small (faces under ~30 px in HD), blazeface, blazeface_full, mesh or haar."
    ),
    detect_interval: float = typer.Option(
        0.3, help="Seconds between full face detections in video (optical-flow tracking in between; 0 = every frame)."
    ),
    plots: bool = typer.Option(True, help="Write timeline and distribution PNGs beside the output."),
    resume: bool = typer.Option(
        False, help="Continue an interrupted run exactly where its last checkpoint (<output>.state.json) left off."
    ),
    checkpoint_every: float = typer.Option(
        2.0, min=0.0, max=3600.0, help="Seconds of video work between resume checkpoints."
    ),
    calibration: Path | None = path_option(None, help=CALIBRATION_HELP),
    no_calibration: bool = typer.Option(False, "--no-calibration", help=NO_CALIBRATION_HELP),
    tta: str = typer.Option("auto", help=TTA_HELP),
    aus: bool = typer.Option(
        False,
        "--aus",
        help="Also action units (presence and intensity), visual speech (video), speech_action and hard-case rules "
        "per face (runs MediaPipe's face landmarker on each face).",
    ),
    rules: Path | None = path_option(None, help="Hard-case rules TOML for --aus (default: the shipped rules)."),
    au_fps: str = typer.Option(
        "15",
        help="Video with --aus: landmarker fits per face per second at most ('all': every frame); frames between "
        "repeat the face's last AU fields.",
    ),
    live: str | None = typer.Option(None, "--live", metavar="SOURCE", help=LIVE_HELP),
    max_frames: int | None = typer.Option(None, help="--live: stop after this many processed frames."),
    duration: float | None = typer.Option(None, help="--live: stop after this many seconds."),
) -> None:
    """Detect, align and classify faces; write one record per face per sampled frame (or per live frame)."""
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.analysis.records import FaceRecord
    from ferkit.analysis.setup import ModelSetup
    from ferkit.api import run_analysis

    opts = AnalyzeOptions(
        fps=_parse_fps("5" if fps is None else fps),
        crops=crops,
        detector=detector,
        detect_interval=detect_interval,
        aus=aus,
        rules=rules,
        au_fps=_parse_fps(au_fps, "--au-fps"),
        checkpoint_seconds=checkpoint_every,
    )
    with progress() as bar:
        task = bar.add_task("analysing", total=None)

        def tick(rec: FaceRecord) -> None:
            bar.update(task, description=f"analysing {Path(rec.source).name}", advance=1)

        _check_gate_threshold(gate_threshold)
        if gate is None and gate_class is not None:
            raise InputError("--gate-class needs --gate")
        if reliability is not None and not reliability.is_file():
            raise InputError(f"{reliability}: reliability report not found")
        cal = _calibration(calibration, no_calibration, len(model))
        setup = ModelSetup(model, cal, fusion, reliability, gate, gate_class, gate_threshold, tta)
        if live is not None or max_frames is not None or duration is not None:
            live_fps = None if fps is None else _parse_fps(fps)
            args = (output, fmt, setup, opts, live_fps, resume, plots, max_frames, duration)
            return analyze_live(live, paths or [], *args)
        with _guarded_outputs(paths or [], output, fmt):
            summary = run_analysis(paths or [], output, fmt, setup, opts, resume, plots, tick)
    for out in summary.outputs:
        typer.echo(str(out))
    for p in summary.plots:
        console.print(f"plot: {escape(str(p))}")
    gated = f", {summary.gated} gated" if gate is not None else ""
    console.print(f"{summary.records} records ({summary.faces} faces{gated}, {summary.no_face} frames without a face)")
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")
    if summary.skipped:
        console.print(f"[yellow]skipped {len(summary.skipped)} bad file(s):[/]")
        for _path, why in summary.skipped:
            console.print(f"  {escape(why)}")


@app.command()
def evaluate(
    datasets: list[Path] = path_argument(..., help="Folders of <class>/<image> or <class>/<video> subfolders."),
    model: list[str] = typer.Option([DEFAULT_MODEL], "--model", help="Model name or folder; repeat for several."),
    crops: bool = typer.Option(False, "--crops", help="Images are face crops (no detection)."),
    detector: str = typer.Option("yunet", help="Detector for uncropped photos (see ferkit models)."),
    split: str = typer.Option("all", help="'all' images, or 'validation': only the model card's validation files."),
    report_file: Path | None = path_option(None, "--report", help="Write the JSON report here."),
    out_dir: Path | None = path_option(
        None, "--out-dir", help="Write report.json, report.md, confusion CSV/PNGs, reliability diagrams, comparisons."
    ),
    calibration: Path | None = path_option(None, help=CALIBRATION_HELP),
    no_calibration: bool = typer.Option(False, "--no-calibration", help=NO_CALIBRATION_HELP),
    tta: str = typer.Option("auto", help=TTA_HELP),
    fps: str = typer.Option("5", help="Video datasets: sampling rate in frames per second, or 'all' for every frame."),
) -> None:
    """Score models on labelled folders: accuracy, balanced accuracy, F1, per-class metrics, confusion, ECE.

    Folders of videos are analysed as `analyze` does and scored per frame (smoothed label) and per clip (majority)."""
    from ferkit.api import evaluate as evaluate_all
    from ferkit.models.base import EmotionModel
    from ferkit.models.loading import load_model

    _check_report_outputs(report_file, out_dir, datasets)
    from ferkit.faces.detectors import check_detector

    check_detector(detector)
    video_fps = _parse_fps(fps)
    cal = _calibration(calibration, no_calibration, len(model))
    models = [load_model(m, calibration=cal) for m in model]  # load (and hash-check) every model before any work
    with progress() as bar:

        def bar_for(m: EmotionModel, d: Path) -> Callable[[int], None]:
            task = bar.add_task(f"{m.name} on {d.name}", total=None)
            return lambda n: bar.advance(task, n)

        doc = evaluate_all(
            datasets, models, crops, progress=bar_for, tta=tta, fps=video_fps, detector=detector, split=split
        )
    blocks = doc["results"]
    table = Table("model", "dataset", "unit", "n", "accuracy", "bal. acc.", "macro-F1", "ECE", "misses")
    for b in blocks:
        for m in [b, b["clip_level"]] if "clip_level" in b else [b]:
            table.add_row(
                b["model"]
                + (" (calibrated)" if b["protocol"]["calibration"] else "")
                + (f" (tta {b['protocol']['tta']})" if b["protocol"]["tta"] != "none" else ""),
                b["dataset"],
                m.get("unit", "images"),
                str(m["n"]),
                f"{m['accuracy']:.4f}",
                f"{m['balanced_accuracy']:.4f}",
                f"{m['macro_f1']:.4f}",
                "n/a" if m["ece"] is None else f"{m['ece']:.4f}",
                str(m["misses"]),
            )
    Console().print(table)
    for b in blocks:
        if b["skipped_classes"]:
            unit = " (clips per folder)" if "clip_level" in b else ""
            console.print(
                f"[yellow]{b['dataset']}: classes unknown to {b['model']} skipped{unit}:[/] {b['skipped_classes']}"
            )
        if "clip_level" in b:
            console.print(
                f"{b['dataset']}: frames scored by their {b['frame_label']}, {b['frames_without_face']} without a face"
            )
        for w in b.get("warnings", []):
            console.print(f"[yellow]warning:[/] {escape(w)}")
        if b["unreadable"]:
            console.print(f"[yellow]{b['dataset']}: {b['unreadable']} unreadable image(s) skipped[/]")
    if report_file:
        atomic_write_text(report_file, json.dumps(doc, indent=1))
        typer.echo(str(report_file))
    if out_dir:
        from ferkit.evaluation.reports import write_report

        for path in write_report(doc, out_dir):
            typer.echo(str(path))


@app.command()
def calibrate(
    data: list[Path] = path_argument(
        ..., help="A labelled <class>/<image> folder, or (with --unlabelled) images, folders or videos."
    ),
    model: str = typer.Option(DEFAULT_MODEL, help="Model name or folder to calibrate."),
    objective: str = typer.Option("macro_f1", help="macro_f1, balanced_accuracy (labelled) or distribution."),
    method: str = typer.Option("tpe", help="Bias search: grid, tpe (Optuna Bayesian) or evolution (SciPy DE)."),
    target: str | None = typer.Option(None, help="Class ratios for --objective distribution, e.g. 'happy=2,sad=1'."),
    trials: int = typer.Option(200, min=1, help="Objective evaluations the search may spend."),
    holdout: float = typer.Option(0.3, help="Share kept out of fitting and scored before/after (0: none)."),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="DATA are unlabelled images/videos."),
    crops: bool = typer.Option(False, "--crops", help="Images are face crops (no detection)."),
    split: str = typer.Option("all", help="'validation': only the model card's validation files of DATA."),
    fps: str = typer.Option("5", help="Video sampling rate for --unlabelled videos ('all' = every frame)."),
    temperature: bool = typer.Option(True, help="Fit a temperature too (needs labels)."),
    seed: int = typer.Option(0),
    keep_bias: bool = typer.Option(
        False, "--keep-bias", help="Keep searched biases even when they do not improve the held-out objective."
    ),
    output: Path | None = path_option(None, "--output", "-o", help="Where to write (default: model folder)."),
) -> None:
    """Fit per-class logit biases (and a temperature) on cached logits; analyze/evaluate then apply them."""
    from ferkit.analysis.pipeline import AnalyzeOptions
    from ferkit.api import calibrate as run_calibrate

    if not unlabelled and len(data) != 1:
        raise InputError("give one labelled dataset folder (or --unlabelled with images/videos)")
    if output is not None:
        check_writable(output, "--output", inputs=data)
    if not 0 <= seed < 2**32:
        raise InputError(f"--seed must be in [0, 2**32), got {seed}")
    opts = AnalyzeOptions(fps=_parse_fps(fps), crops=crops)
    with progress() as bar:
        bar.add_task("computing logits and searching biases", total=None)
        path, cal = run_calibrate(
            model,
            None if unlabelled else data[0],
            data if unlabelled else (),
            objective,
            method,
            target,
            trials,
            holdout,
            crops,
            split,
            temperature,
            seed,
            output,
            opts,
            keep_bias,
        )
    before, after = cal.metrics["before"], cal.metrics["after"]
    table = Table(f"on {cal.metrics['scored_on']}", "before", "after")
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "ece", "nll", "distribution_distance"):
        if key in before:
            table.add_row(key, f"{before[key]:.4f}", f"{after[key]:.4f}")
    for c in before.get("recall", {}):
        table.add_row(f"recall {c}", f"{before['recall'][c]:.3f}", f"{after['recall'][c]:.3f}")
    Console().print(table)
    if cal.fitted_on.get("bias_kept") is False:
        console.print("[yellow]biases did not improve the held-out objective: reset to 0 (--keep-bias keeps them)[/]")
    console.print(f"bias {dict(zip(cal.classes, cal.bias, strict=True))}, temperature {cal.temperature:.3f}")
    for w in cal.fitted_on.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(w)}")
    typer.echo(str(path))


@app.command()
def models() -> None:
    """List registered models (folders and optional backends such as ``fer``) and their calibration, then the face
    detectors (``--detector``) and which footage each suits."""
    from ferkit.errors import ModelError
    from ferkit.faces.detectors import DETECTORS
    from ferkit.models.loading import MODEL_FOLDERS, MODEL_LOADERS, load_model

    table = Table("name", "classes", "input", "calibration", "source")
    for name in [*MODEL_FOLDERS, *MODEL_LOADERS]:
        try:
            m = load_model(name)
        except ModelError as e:
            table.add_row(name, "-", "-", "-", f"not available: {escape(str(e))}")
            continue
        cal = m.calibration
        cal_text = "none" if cal is None else f"T={cal.temperature:.2f}, biases {'on' if any(cal.bias) else 'off'}"
        source = getattr(m, "folder", None) or getattr(m, "source_file", "")
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        table.add_row(label, ", ".join(m.classes), f"{m.input_size}px {m.channels}", cal_text, escape(str(source)))
    Console().print(table)
    detectors = Table("detector (--detector)", "use when")
    for name, cls in DETECTORS.items():
        detectors.add_row(name, escape(getattr(cls, "use_when", "")))
    Console().print(detectors)


@app.command()
def demo(
    out: Path = path_option(Path("ferkit-results/demo"), help="Folder for the sample inputs and results."),
) -> None:
    """Analyse a bundled public-domain sample (scikit-image's astronaut photo, and a short clip made from it)."""
    from ferkit.api import run_analysis
    from ferkit.media.samples import make_samples

    check_out_dir(out, "--out")
    image, video = make_samples(out)
    summary = run_analysis([image, video], None, "jsonl", DEFAULT_MODEL, None, plots=True)
    for o in summary.outputs + summary.plots:
        typer.echo(str(o))
