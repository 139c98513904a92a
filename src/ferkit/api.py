"""Python API mirroring the CLI: ``ferkit.analyze(...)`` and ``ferkit.evaluate(...)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferkit.errors import InputError
from ferkit.evaluate import evaluate as _evaluate_one
from ferkit.evaluate import report
from ferkit.models import EmotionModel, load_model
from ferkit.pipeline import AnalyzeOptions, Analyzer, collect_inputs
from ferkit.records import FORMATS, FaceRecord, RecordWriter, read_records, resume_points
from ferkit.video import is_video

RESULTS_DIR = Path("ferkit-results")

#: onnxruntime threads for analysis: the model runs in a worker thread beside decoding and tracking, and one
#: thread each measured faster than two fighting over two cores (benchmarks/video_speed.py).
ANALYSIS_THREADS = 1


@dataclass
class AnalysisSummary:
    """What a run wrote and what it skipped."""

    outputs: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    records: int = 0
    faces: int = 0
    no_face: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def default_outputs(paths: list[Path], fmt: str) -> list[Path]:
    """``./ferkit-results/<input name>.<format>`` per input (file stem or folder name), made unique."""
    outs: list[Path] = []
    for p in paths:
        name = (p.name if p.is_dir() else p.stem) or "results"
        if name in ("", ".", ".."):
            name = p.resolve().name or "results"
        out, n = RESULTS_DIR / f"{name}.{fmt}", 2
        while out in outs:
            out, n = RESULTS_DIR / f"{name}_{n}.{fmt}", n + 1
        outs.append(out)
    return outs


def _model(model: str | Path | EmotionModel, threads: int = 0) -> EmotionModel:
    return model if isinstance(model, EmotionModel) else load_model(model, threads)


def run_analysis(
    paths: Iterable[str | Path],
    output: Path | None = None,
    fmt: str = "jsonl",
    model: str | Path | EmotionModel = "ferkit",
    options: AnalyzeOptions | None = None,
    resume: bool = False,
    plots: bool = True,
    progress: Callable[[FaceRecord], None] | None = None,
) -> AnalysisSummary:
    """Analyse inputs and write records (one file per input, or all into ``output``), plus plots.

    Files named explicitly must be readable (``InputError`` otherwise); files found inside folders are skipped and
    listed in the summary when bad. ``progress(record)`` is called per record.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input paths given")
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if output is not None and output.suffix.lstrip(".") in FORMATS and output.suffix.lstrip(".") != fmt:
        raise InputError(f"{output}: suffix does not match --format {fmt}")
    emodel = _model(model, ANALYSIS_THREADS)
    analyzer = Analyzer(emodel, options or AnalyzeOptions())
    groups = (
        [(Path(output), paths)] if output else list(zip(default_outputs(paths, fmt), [[p] for p in paths], strict=True))
    )
    summary = AnalysisSummary()
    for out, group in groups:
        sources = collect_inputs(group)
        if not sources:
            raise InputError(f"{', '.join(map(str, group))}: no image or video files found")
        writer = RecordWriter(out, fmt, emodel.classes, append=resume)
        done = resume_points(writer.line_path, "jsonl" if fmt == "parquet" else fmt) if resume else {}
        with writer:
            for rec in analyzer.iter_records(sources, strict=[p for p in group if not p.is_dir()], start_after=done):
                writer.write(rec)
                summary.faces += rec.face_id is not None
                summary.no_face += rec.face_id is None
                if progress:
                    progress(rec)
        summary.records += writer.count
        summary.outputs.append(out)
        if plots:
            try:
                summary.plots += _plots(out, fmt)
            except Exception as e:
                analyzer.warnings.append(f"plots for {out} failed: {e}")
    summary.skipped, summary.warnings = analyzer.skipped, analyzer.warnings
    return summary


def _plots(out: Path, fmt: str) -> list[Path]:
    from ferkit.plots import plot_distribution, plot_timeline

    frame = read_records(out, fmt)
    if frame.empty:
        return []
    base = out.with_suffix("")
    made = [plot_distribution(frame, base.with_name(base.name + ".distribution.png"))]
    several = frame["source"].nunique() > 1
    for src, d in frame.groupby("source"):
        if d["timestamp"].notna().any() and is_video(Path(src)):
            name = f"{base.name}.{Path(src).stem}.timeline.png" if several else f"{base.name}.timeline.png"
            made.append(plot_timeline(d, base.with_name(name), title=f"{Path(src).name}: emotion timeline"))
    return made


def analyze(
    paths: str | Path | Iterable[str | Path],
    fps: float | None = 5.0,
    model: str | Path | EmotionModel = "ferkit",
    crops: bool = False,
    output: str | Path | None = None,
    fmt: str = "jsonl",
    as_dataframe: bool = False,
    **options: Any,
) -> list[dict[str, Any]] | Any:
    """Analyse images, folders or videos; returns records (dicts) or a DataFrame.

    With ``output`` the records are also written there (as ``ferkit analyze --output``). Files named explicitly
    must be readable (``InputError``); bad files inside folders are skipped. Extra keyword arguments go to
    :class:`~ferkit.pipeline.AnalyzeOptions`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    opts = AnalyzeOptions(fps=fps, crops=crops, **options)
    if output is not None:
        collected: list[FaceRecord] = []
        run_analysis(
            paths,
            Path(output),
            fmt,
            model,
            opts,
            plots=False,
            progress=collected.append,
        )
        records = [r.to_dict() for r in collected]
    else:
        analyzer = Analyzer(_model(model, ANALYSIS_THREADS), opts)
        strict = [p for p in paths if not p.is_dir()]
        records = [r.to_dict() for r in analyzer.iter_records(collect_inputs(paths), strict=strict)]
    if as_dataframe:
        import pandas as pd

        return pd.DataFrame(records, columns=list(FaceRecord.__dataclass_fields__))
    return records


def evaluate(
    datasets: str | Path | Iterable[str | Path],
    models: str | Path | EmotionModel | Iterable[str | Path | EmotionModel] = "ferkit",
    crops: bool = False,
    progress: Callable[[EmotionModel, Path], Callable[[int], None] | None] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score each model on each ``<class>/<image>`` dataset; returns the report (one block per pair).

    ``progress(model, dataset)``, if given, returns the per-image callback for that pair (e.g. a progress bar).
    """
    datasets = [datasets] if isinstance(datasets, (str, Path)) else list(datasets)
    models = [models] if isinstance(models, (str, Path, EmotionModel)) else list(models)
    blocks = []
    for m in map(_model, models):
        for d in map(Path, datasets):
            blocks.append(_evaluate_one(m, d, crops, progress=progress(m, d) if progress else None, **kwargs))
    return report(blocks)
