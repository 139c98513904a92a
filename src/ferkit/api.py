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
from ferkit.records import FaceRecord, RecordWriter, read_records, resume_points
from ferkit.video import is_video

RESULTS_DIR = Path("ferkit-results")


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


def default_output(path: Path, fmt: str) -> Path:
    """``./ferkit-results/<input name>.<format>`` (the file stem, or the folder name)."""
    path = Path(path)
    name = path.name if path.is_dir() else path.stem
    return RESULTS_DIR / f"{name or 'results'}.{fmt}"


def _model(model: str | Path | EmotionModel) -> EmotionModel:
    return model if isinstance(model, EmotionModel) else load_model(model)


def run_analysis(
    paths: Iterable[str | Path],
    output: Path | None = None,
    fmt: str = "jsonl",
    model: str | Path | EmotionModel = "ferkit",
    options: AnalyzeOptions | None = None,
    resume: bool = False,
    plots: bool = True,
    progress: Callable[[FaceRecord | None, Path], None] | None = None,
) -> AnalysisSummary:
    """Analyse inputs and write records (one file per input, or all into ``output``), plus plots.

    Files named explicitly must be readable (``InputError`` otherwise); files found inside folders are skipped and
    listed in the summary when bad. ``progress(record, source)`` is called per record and once per source end.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input paths given")
    emodel = _model(model)
    analyzer = Analyzer(emodel, options or AnalyzeOptions())
    groups = [(Path(output), paths)] if output else [(default_output(p, fmt), [p]) for p in paths]
    summary = AnalysisSummary()
    for out, group in groups:
        sources = collect_inputs(group)
        explicit = {p for p in group if not p.is_dir()}
        writer = RecordWriter(out, fmt, emodel.classes, append=resume)
        done = resume_points(writer.line_path) if resume else {}
        with writer:
            for src in sources:
                try:
                    for rec in analyzer.iter_source(src, start_after=done.get(str(src), -1)):
                        writer.write(rec)
                        summary.faces += rec.face_id is not None
                        summary.no_face += rec.face_id is None
                        if progress:
                            progress(rec, src)
                except InputError as e:
                    if src in explicit:
                        raise
                    summary.skipped.append((str(src), str(e)))
                if progress:
                    progress(None, src)
        summary.records += writer.count
        summary.outputs.append(out)
        if plots:
            summary.plots += _plots(out, fmt)
    summary.warnings = analyzer.warnings
    return summary


def _plots(out: Path, fmt: str) -> list[Path]:
    from ferkit.plots import plot_distribution, plot_timeline

    frame = read_records(out)
    if frame.empty:
        return []
    base = out.with_suffix("")
    made = [plot_distribution(frame, base.with_name(base.name + ".distribution.png"))]
    for src, d in frame.groupby("source"):
        if d["timestamp"].notna().any() and is_video(Path(src)):
            name = (
                f"{base.name}.{Path(src).stem}.timeline.png"
                if len(frame["source"].unique()) > 1
                else (f"{base.name}.timeline.png")
            )
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

    With ``output`` the records are also written there (as ``ferkit analyze --output``). Bad files inside folders
    are skipped; extra keyword arguments go to :class:`~ferkit.pipeline.AnalyzeOptions`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    opts = AnalyzeOptions(fps=fps, crops=crops, **options)
    if output is not None:
        run_analysis(paths, Path(output), fmt, model, opts, plots=False)
        frame = read_records(Path(output))
        return frame if as_dataframe else frame.to_dict("records")
    analyzer = Analyzer(_model(model), opts)
    records = [r.to_dict() for r in analyzer.iter_records(collect_inputs(paths))]
    if as_dataframe:
        import pandas as pd

        return pd.DataFrame(records, columns=list(FaceRecord.__dataclass_fields__))
    return records


def evaluate(
    datasets: str | Path | Iterable[str | Path],
    models: str | Path | EmotionModel | Iterable[str | Path | EmotionModel] = "ferkit",
    crops: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score each model on each ``<class>/<image>`` dataset; returns the report (one block per pair)."""
    datasets = [datasets] if isinstance(datasets, (str, Path)) else list(datasets)
    models = [models] if isinstance(models, (str, Path, EmotionModel)) else list(models)
    blocks = [_evaluate_one(_model(m), Path(d), crops, **kwargs) for m in models for d in datasets]
    return report(blocks)
