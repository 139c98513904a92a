"""Python API mirroring the CLI: ``ferkit.analyze(...)`` and ``ferkit.evaluate(...)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferkit.analysis.checkpoint import StateFile, run_settings
from ferkit.analysis.pipeline import AnalyzeOptions
from ferkit.analysis.records import (
    AU_RECORD_FIELDS,
    BASE_FIELDS,
    FORMATS,
    FaceRecord,
    RecordWriter,
)
from ferkit.analysis.resume import resume_from
from ferkit.analysis.setup import ANALYSIS_THREADS as ANALYSIS_THREADS  # re-exported (benchmarks use it)
from ferkit.analysis.setup import ModelArg, ModelSetup, make_analyzer
from ferkit.errors import InputError
from ferkit.evaluation.calibration_inputs import labelled_logits, score_summary, unlabelled_logits
from ferkit.evaluation.scoring import evaluate as _evaluate_one
from ferkit.evaluation.scoring import report, split_files
from ferkit.evaluation.videos import dataset_kinds, evaluate_videos
from ferkit.media.files import collect_inputs
from ferkit.models.base import EmotionModel, set_tta
from ferkit.models.loading import DEFAULT_MODEL, load_model

if TYPE_CHECKING:
    from ferkit.models.calibration import Calibration

RESULTS_DIR = Path("ferkit-results")


@dataclass
class AnalysisSummary:
    """What a run wrote and what it skipped."""

    outputs: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    records: int = 0
    faces: int = 0
    no_face: int = 0
    gated: int = 0  # face records whose emotion a gate model withheld
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


def _model(model: ModelArg, threads: int = 0, calibration: bool | str | Path = True) -> EmotionModel:
    return model if isinstance(model, EmotionModel) else load_model(model, threads, calibration)


def run_analysis(
    paths: Iterable[str | Path],
    output: Path | None = None,
    fmt: str = "jsonl",
    model: ModelSetup | ModelArg | Sequence[ModelArg] = DEFAULT_MODEL,
    options: AnalyzeOptions | None = None,
    resume: bool = False,
    plots: bool = True,
    progress: Callable[[FaceRecord], None] | None = None,
) -> AnalysisSummary:
    """Analyse inputs and write records (one file per input, or all into ``output``), plus plots.

    Files named explicitly must be readable (``InputError`` otherwise); files found inside folders are skipped and
    listed in the summary when bad. ``progress(record)`` is called per record. ``model``: a model, a list of
    models, or a :class:`~ferkit.analysis.pipeline.ModelSetup` (calibration, fusion, gate; see :func:`analyze`).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no input paths given")
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if output is not None and output.suffix.lstrip(".") in FORMATS and output.suffix.lstrip(".") != fmt:
        raise InputError(f"{output}: suffix does not match --format {fmt}")
    analyzer = make_analyzer(model, options)
    groups = (
        [(Path(output), paths)] if output else list(zip(default_outputs(paths, fmt), [[p] for p in paths], strict=True))
    )
    summary = AnalysisSummary()
    state_files = [StateFile(out, run_settings(analyzer)) for out, _ in groups]
    checkpoints = [s.check() if resume else None for s in state_files]  # other settings: refused before any work
    for (out, group), state_file, cp in zip(groups, state_files, checkpoints, strict=True):
        sources = collect_inputs(group)
        if not sources:
            raise InputError(f"{', '.join(map(str, group))}: no image or video files found")
        writer = RecordWriter(out, fmt, analyzer.classes, append=resume, au_keys=analyzer.au_keys)
        cp = cp if cp is None or analyzer.state_fits(cp.state) else None  # a damaged checkpoint: redo that video
        done, states = resume_from(writer, analyzer.name, sources, cp) if resume else ({}, {})
        analyzer.checkpoint, started = state_file.save, False
        with writer:
            strict = [p for p in group if not p.is_dir()]
            for rec in analyzer.iter_records(sources, strict, done, states):
                if not started:  # settings (and the checkpoint continued from) beside the first new record
                    state_file.start(cp if states else None)
                    started = True
                writer.write(rec)
                summary.faces += rec.face_id is not None
                summary.no_face += rec.face_id is None
                summary.gated += bool(rec.gated)
                if progress:
                    progress(rec)
        summary.records += writer.count
        summary.outputs.append(out)
        if plots:
            from ferkit.analysis.plots import output_plots

            try:
                summary.plots += output_plots(out, fmt)
            except Exception as e:
                analyzer.warnings.append(f"plots for {out} failed: {e}")
    summary.skipped, summary.warnings = analyzer.skipped, analyzer.warnings
    return summary


def analyze(
    paths: str | Path | Iterable[str | Path],
    fps: float | None = 5.0,
    model: ModelArg | Sequence[ModelArg] = DEFAULT_MODEL,
    crops: bool = False,
    output: str | Path | None = None,
    fmt: str = "jsonl",
    as_dataframe: bool = False,
    calibration: bool | str | Path = True,
    fusion: str | None = None,
    reliability: str | Path | dict | None = None,
    gate: ModelArg | None = None,
    gate_class: str | None = None,
    gate_threshold: float = 0.5,
    tta: str = "auto",
    **options: Any,
) -> list[dict[str, Any]] | Any:
    """Analyse images, folders or videos; returns records (dicts) or a DataFrame.

    With ``output`` the records are also written there (as ``ferkit analyze --output``). Files named explicitly
    must be readable (``InputError``); bad files inside folders are skipped. ``model`` may be a list (first =
    primary); ``fusion``, ``reliability`` and ``gate``/``gate_class``/``gate_threshold``: see :func:`run_analysis`.
    ``tta``: test-time augmentation of the models (``none``, ``flip``, ``flip_shift``, or ``auto``: flip for images,
    none for video; see :func:`ferkit.models.base.resolve_tta`). Extra keyword arguments go to
    :class:`~ferkit.analysis.pipeline.AnalyzeOptions`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    opts = AnalyzeOptions(fps=fps, crops=crops, **options)
    setup = ModelSetup(model, calibration, fusion, reliability, gate, gate_class, gate_threshold, tta)
    if output is not None:
        collected: list[FaceRecord] = []
        run_analysis(paths, Path(output), fmt, setup, opts, plots=False, progress=collected.append)
        records = [r.to_dict() for r in collected]
    else:
        analyzer = make_analyzer(setup, opts)
        strict = [p for p in paths if not p.is_dir()]
        records = [r.to_dict() for r in analyzer.iter_records(collect_inputs(paths), strict=strict)]
    if as_dataframe:
        import pandas as pd

        return pd.DataFrame(records, columns=list(AU_RECORD_FIELDS if opts.aus else BASE_FIELDS))
    return records


def evaluate(
    datasets: str | Path | Iterable[str | Path],
    models: str | Path | EmotionModel | Iterable[str | Path | EmotionModel] = DEFAULT_MODEL,
    crops: bool = False,
    progress: Callable[[EmotionModel, Path], Callable[[int], None] | None] | None = None,
    calibration: bool | str | Path = True,
    tta: str | None = "auto",
    fps: float | None = 5.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score each model on each ``<class>/<image>`` or ``<class>/<clip>`` dataset; returns the report (block per pair).

    Videos are analysed as ``ferkit analyze`` does at ``fps`` and scored per frame and per clip (see
    :mod:`ferkit.evaluation.videos`); a folder mixing images and videos is refused. ``progress(model, dataset)``, if
    given, returns the per-image (per-frame) callback for that pair. ``calibration`` applies to every model named by
    string; ``tta`` (``none``, ``flip``, ``flip_shift``; ``auto`` = flip for stills, none for video) sets every
    model's test-time augmentation (``None``: leave it as it is); ``split="validation"`` (a keyword for
    :func:`ferkit.evaluation.scoring.evaluate`) scores only the validation images listed by the first model whose
    card has such a list, for every model (so models can be compared, or reliabilities measured, on the same images).
    """
    datasets = [Path(d) for d in ([datasets] if isinstance(datasets, (str, Path)) else datasets)]
    models = [
        _model(m, 0, calibration) for m in ([models] if isinstance(models, (str, Path, EmotionModel)) else models)
    ]
    if tta is not None:
        set_tta(models, tta)
    media = dataset_kinds(datasets, kwargs.get("split", "all"))  # a mixed folder fails here, before any work
    split_of = None
    if kwargs.get("split", "all") != "all":
        for m in models:  # the first model whose card lists validation files
            try:
                split_files(m, kwargs["split"])
            except InputError:
                continue
            split_of = m
            break
    blocks = []
    for m in models:
        for d, kind in zip(datasets, media, strict=True):
            cb = progress(m, d) if progress else None
            if tta is not None:
                set_tta([m], tta, video=kind == "videos")
            if kind == "videos":
                blocks.append(evaluate_videos(m, d, crops, fps, kwargs.get("detector", "yunet"), tta, cb))
            else:
                blocks.append(_evaluate_one(m, d, crops, progress=cb, split_of=split_of, **kwargs))
    return report(blocks)


def calibrate(
    model: str | Path = DEFAULT_MODEL,
    dataset: str | Path | None = None,
    unlabelled: Iterable[str | Path] = (),
    objective: str = "macro_f1",
    method: str = "tpe",
    target: str | None = None,
    trials: int = 200,
    holdout: float = 0.3,
    crops: bool = False,
    split: str = "all",
    temperature: bool = True,
    seed: int = 0,
    output: str | Path | None = None,
    options: AnalyzeOptions | None = None,
    keep_bias: bool = False,
) -> tuple[Path, Calibration]:
    """Fit per-class logit biases (and a temperature, with labels) and save them beside the model.

    Labelled: ``dataset`` is a ``<class>/<image>`` folder (``split="validation"`` uses the card's validation files,
    never test images). Unlabelled: images/videos in ``unlabelled`` with ``objective="distribution"`` and target
    ratios. ``holdout`` of the data is kept out of fitting and scored before/after (stored in the file's metrics);
    biases that do not improve the objective there are reset to 0 unless ``keep_bias``.
    Returns the written path and the calibration.
    """
    from sklearn.model_selection import train_test_split

    from ferkit.models.calibration import SIDECAR, fit_calibration, fit_temperature, make_objective, parse_target

    emodel = load_model(model, calibration=False)
    tgt = parse_target(target, emodel.classes) if target else None
    unlabelled = [Path(p) for p in unlabelled]
    truth: np.ndarray | None = None
    if dataset is not None:
        detector = (options or AnalyzeOptions()).detector
        z, truth, info = labelled_logits(emodel, Path(dataset), crops, split, detector, RESULTS_DIR / "cache")
    elif unlabelled:
        if objective != "distribution":
            raise InputError("unlabelled inputs can only be fitted with --objective distribution and --target")
        z, info = unlabelled_logits(emodel, unlabelled, options or AnalyzeOptions(crops=crops))
    else:
        raise InputError("give a labelled dataset folder or unlabelled inputs to calibrate on")
    y = None if objective == "distribution" else truth  # distribution matching never fits on labels
    idx = np.arange(len(z))
    if not 0 <= holdout < 1:
        raise InputError(f"--holdout must be in [0, 1), got {holdout}")
    if holdout > 0:
        strat = truth if truth is not None and np.bincount(truth).min() >= 2 else None
        fit_idx, held = train_test_split(idx, test_size=holdout, random_state=seed, stratify=strat)
    else:
        fit_idx, held = idx, idx
    cal = fit_calibration(
        z[fit_idx],
        emodel.classes,
        emodel.sha256,
        y=None if y is None else y[fit_idx],
        objective=objective,
        method=method,
        target=tgt,
        trials=trials,
        temperature=temperature,
        seed=seed,
        fitted_on=info | {"fit_images": len(fit_idx), "holdout_images": len(held) if holdout > 0 else 0},
    )
    if holdout > 0 and not keep_bias:
        # Biases are only kept when they improve the objective on images the search never saw: on a model that is
        # already balanced, a search over ~1,000 images mostly fits noise (see docs/calibration.md).
        judge = make_objective(objective, None if y is None else y[held], tgt)
        gain = judge(cal.apply(z[held]).argmax(1)) - judge(z[held].argmax(1))
        cal.fitted_on["holdout_objective_gain"] = round(float(gain), 6)
        if gain <= 0:
            cal.bias = [0.0] * len(cal.bias)
            if temperature and y is not None:
                cal.temperature = round(fit_temperature(z[fit_idx], y[fit_idx]), 6)
            cal.fitted_on["bias_kept"] = False
    lab = None if truth is None else truth[held]
    cal.metrics = {
        "scored_on": "holdout" if holdout > 0 else "fit data (no holdout)",
        "before": score_summary(z[held], lab, tgt, emodel.classes),
        "after": score_summary(cal.apply(z[held]), lab, tgt, emodel.classes),
    }
    folder = getattr(emodel, "folder", None)
    if output is None and folder is None:
        raise InputError(f"model {emodel.name!r} has no folder to store its calibration in: give --output FILE")
    path = Path(output) if output is not None else Path(folder) / SIDECAR
    return cal.save(path), cal
