"""Training commands of the ``ferkit`` CLI: ``dataset``, ``train CONFIG``, ``train-batch CONFIG_DIR``, ``export RUN``.

They need the ``train`` extra (torch); without it they stop with one line saying how to install it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ferkit.cli.app import app, console, path_argument, path_option, progress
from ferkit.errors import InputError
from ferkit.media.files import atomic_write_text, check_writable


def _need_torch(mlflow: bool = False) -> None:
    """One line instead of an ImportError when the ``train`` extra is missing."""
    import importlib.util

    for module in ("torch", "onnx") + (("mlflow",) if mlflow else ()):
        if importlib.util.find_spec(module) is None:
            raise InputError(
                f"training needs {module}: pip install 'ferkit[train]' (torch==2.13.0, onnx, mlflow-skinny)"
                + (" or set tracking.mlflow = false" if module == "mlflow" else "")
            )


def _overrides(values: list[str]) -> dict[str, object]:
    """``--set optim.epochs=2`` → ``{"optim.epochs": 2}`` (values parsed as JSON when they parse)."""
    out: dict[str, object] = {}
    for item in values:
        if "=" not in item:
            raise InputError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def run_config(config: Path, resume: bool, overrides: dict[str, object], export: bool = True) -> dict:
    """Train one config (with a rich progress bar), export ``<run>/model`` and log it to MLflow."""
    from ferkit.training.config import load_config
    from ferkit.training.experiment import open_tracker
    from ferkit.training.export import export_run
    from ferkit.training.loop import train

    cfg = load_config(config, overrides)
    _need_torch()
    from ferkit.training.preflight import check_run

    check_run(cfg, export, resume=resume)  # every refusal before the first line of output
    console.print(f"[bold]{cfg.name}[/]: run folder {cfg.run_dir}")
    with progress() as bar:
        task = bar.add_task("epoch", total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = train(cfg, resume=resume, log=lambda m: console.print(m, highlight=False), on_step=step)
    if export and result["best_epoch"] >= 0:
        out = cfg.run_dir / "model"
        card = export_run(
            cfg.run_dir,
            out,
            cfg.name,
            [Path(p) for p in cfg.data.test_dirs],
            reproduce=[
                " ".join(["ferkit train", str(config), *(f"--set {k}={json.dumps(v)}" for k, v in overrides.items())])
            ],
        )
        t = cfg.tracking
        tracker = open_tracker(t.mlflow, t.uri, t.experiment, Path(cfg.output), cfg.name, result["mlflow_run_id"])
        tracker.log_artifacts(out, "model")
        for key, block in card["metrics"].items():
            tracker.log_metrics({f"{key}_accuracy": block["accuracy"], f"{key}_macro_f1": block["macro_f1"]}, 0)
            console.print(f"{key}: accuracy {block['accuracy']:.4f}, macro-F1 {block['macro_f1']:.4f}")
        tracker.end()
        result["model"] = str(out)
        console.print(f"model folder: {out} (use with --model {out})")
    return result


@app.command("dataset")
def dataset_cmd(
    path: Path = path_argument(..., help="A folder (<split>/<class>/* or <class>/*) or a FER2013-format CSV."),
    taxonomy: str = typer.Option("basic7", help="Taxonomy to map labels onto (a shipped name or a TOML file)."),
    json_out: Path | None = path_option(None, "--json", help="Write the full report (incl. duplicate groups)."),
) -> None:
    """Inspect training data: classes per split, labels outside the taxonomy, byte duplicates and leakage."""
    from rich.table import Table

    if json_out is not None:
        check_writable(json_out, "--json", inputs=[path])
    rep = dataset_report(path, taxonomy)
    table = Table(title=f"{path} ({rep['taxonomy']})")
    classes = sorted({c for counts in rep["counts"].values() for c in counts})
    table.add_column("class")
    for split in rep["counts"]:
        table.add_column(split, justify="right")
    for c in classes:
        table.add_row(c, *[str(rep["counts"][s].get(c, 0)) for s in rep["counts"]])
    console.print(table)
    d = rep["duplicates"]
    for split, v in d["within"].items():
        console.print(f"{split}: {v['redundant_copies']} redundant byte copies in {v['groups']} groups")
    console.print(
        f"{d['cross_split_groups']} duplicate groups span splits ({d['train_copies_of_eval']} train files copy "
        f"a validation/test image; `data.drop_duplicates` drops them); {d['label_conflict_groups']} groups "
        "carry different labels"
    )
    if rep["unknown_labels"]:
        console.print(f"[yellow]labels outside the taxonomy[/]: {rep['unknown_labels']}")
    for kind, items in rep["problems"].items():
        console.print(f"[yellow]{kind.replace('_', ' ')}[/]: {len(items)}, e.g. {items[0]}")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(rep, indent=1))


@app.command("train")
def train_cmd(
    config: Path = path_argument(..., help="Run config (.toml, .yaml or .json); see configs/."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key, e.g. --set optim.epochs=2."),
    export: bool = typer.Option(True, "--export/--no-export", help="Export <run>/model at the end."),
) -> None:
    """Train a model from a config file; checkpoints every epoch, MLflow tracking, ONNX export at the end."""
    run_config(config, resume, _overrides(set_), export=export)


@app.command("train-batch")
def train_batch_cmd(
    config_dir: Path = path_argument(..., help="Folder of run configs (a sweep); each runs in turn."),
    resume: bool = typer.Option(False, "--resume", help="Resume runs that have a checkpoint (re-exports them)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key in every config."),
    summary: Path | None = path_option(None, help="Write a JSON summary of the runs here."),
) -> None:
    """Train every config in a folder (sorted by name); one failing config does not stop the others."""
    from rich.markup import escape

    from ferkit.errors import FerkitError

    if not config_dir.is_dir():
        raise InputError(f"{config_dir}: config folder not found")
    configs = sorted(p for p in config_dir.iterdir() if p.suffix in (".toml", ".yaml", ".yml", ".json"))
    if not configs:
        raise InputError(f"{config_dir}: no .toml/.yaml/.json configs")
    overrides = _overrides(set_)
    _check_overrides(overrides)
    if summary is not None:
        check_writable(summary, "--summary", inputs=[config_dir])
    rows = []
    for path in configs:
        try:
            res = run_config(path, resume and _has_checkpoint(path, overrides), overrides)
            best = res["history"][res["best_epoch"]] if res["history"] else {}
            rows.append(
                {
                    "config": str(path),
                    "status": "ok",
                    "best_epoch": res["best_epoch"],
                    "val_macro_f1": best.get("val_macro_f1"),
                    "val_accuracy": best.get("val_accuracy"),
                    "model": res.get("model"),
                }
            )
        except Exception as exc:  # one failing config (bad input, out of memory, ...) must not stop the sweep
            msg = str(exc) if isinstance(exc, FerkitError) else f"{type(exc).__name__}: {exc}"
            console.print(f"[red]{path.name}[/]: {escape(msg)}")
            rows.append({"config": str(path), "status": f"error: {msg}"})
    for r in rows:
        console.print(json.dumps(r))
    if summary is not None:
        atomic_write_text(summary, json.dumps(rows, indent=1))
    if any(r["status"] != "ok" for r in rows):
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    run: Path = path_argument(..., help="Training run folder (holds best.pt)."),
    out: Path | None = path_option(None, help="Model folder to write (default: <run>/model)."),
    name: str | None = typer.Option(None, help="Model name for the card (default: the folder name)."),
    test_dir: list[Path] = path_option([], help="Score these <class>/ crop folders into the card."),
    flip_tta: bool = typer.Option(
        False, "--flip-tta", help="Average with the mirrored image inside the graph (2× compute)."
    ),
) -> None:
    """Export a run's best checkpoint to an ONNX model folder usable by analyze/evaluate --model."""

    _need_torch()
    from ferkit.training.export import export_run

    card = export_run(run, out or run / "model", name, test_dir, flip_tta)
    console.print(f"model folder: {out or run / 'model'}")
    for key, block in card["metrics"].items():
        console.print(f"{key}: accuracy {block['accuracy']:.4f}, macro-F1 {block['macro_f1']:.4f}")


def dataset_report(path: Path, taxonomy: str) -> dict:
    """Class counts per split, labels outside ``taxonomy``, byte duplicates and source problems of one source."""
    from collections import Counter

    from ferkit.labels.taxonomy import load_taxonomy, map_labels
    from ferkit.training.sources import fer2013_csv_source, find_duplicates, folder_source

    problems: dict[str, list[str]] = {}
    read = fer2013_csv_source if path.suffix.lower() == ".csv" else folder_source
    samples = read(path, path.stem, report=problems)
    tax = load_taxonomy(taxonomy)
    mapped, labels = map_labels([s.raw_label for s in samples], tax)
    counts: dict[str, Counter] = {}
    for s, m in zip(samples, mapped, strict=True):
        counts.setdefault(s.split or "unsplit", Counter())[m or f"({s.raw_label})"] += 1
    dup = find_duplicates(samples)
    return {
        "source": str(path),
        "taxonomy": tax.name,
        "counts": {split: dict(sorted(c.items())) for split, c in counts.items()},
        "ignored_labels": labels.ignored,
        "unknown_labels": labels.unknown,
        "duplicates": dup.summary(),
        "duplicate_groups": {"within": dup.within, "across": dup.across},
        "problems": problems,
    }


def _check_overrides(overrides: dict[str, object]) -> None:
    """A ``--set`` that no config could take (unknown key, wrong type) is refused once, before any config runs."""
    from ferkit.training.config import config_from_dict

    if not overrides:
        return
    probe: dict = {"name": "probe", "data": {"sources": [{"path": "."}]}}
    for dotted, value in overrides.items():
        node = probe
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {dotted}: {p} is not a table")
        node[last] = value
    try:
        config_from_dict(probe)
    except InputError as exc:
        if "unknown key" in str(exc) or any(str(exc).startswith(k) for k in overrides):
            raise InputError(f"--set: {exc}") from None


def _has_checkpoint(config: Path, overrides: dict[str, object]) -> bool:
    from ferkit.training.config import load_config

    return (load_config(config, overrides).run_dir / "last.pt").exists()
