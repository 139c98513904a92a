"""Stock-photo commands of the ``ferkit`` CLI: ``pull pexels|pixabay`` and ``extract-faces``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ferkit.cli.app import app, console, path_argument, path_option, progress

BASE_URL_HELP = "Send the API requests here instead (a mirror, or `ferkit.stock.replay` for offline tests)."


@app.command("pull")
def pull_cmd(
    source: str = typer.Argument(..., help="pexels or pixabay (key in PEXELS_API_KEY / PIXABAY_API_KEY)."),
    config: Path = path_option(..., "--config", help="Pull config (.toml/.yaml): classes and their queries."),
    out: Path = path_option(..., "--out", help="Raw folder: images/ and manifest.json (a rerun continues)."),
    base_url: str | None = typer.Option(None, "--base-url", help=BASE_URL_HELP),
) -> None:
    """Search a stock-photo API with each class's queries and download the photos, deduplicated by content, with
    their attribution (photographer, licence, page) in OUT/manifest.json. Resumable: rerun to continue."""
    from ferkit.stock.config import load_pull_config
    from ferkit.stock.pull import pull

    cfg = load_pull_config(config)
    with progress() as bar:
        task = bar.add_task(f"pull {source}", total=None)
        res = pull(source, cfg, out, base_url=base_url, on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    c = res.counts
    console.print(
        f"{source}: {c.get('downloaded', 0)} new images, {c.get('duplicates', 0)} duplicates by content, "
        f"{c.get('repeats', 0)} repeats, {c.get('skipped', 0)} skipped; {res.images_total} images in {res.manifest}"
    )
    typer.echo(json.dumps({"counts": c, "client": res.client, "images": res.images_total}))


@app.command("extract-faces")
def extract_faces_cmd(
    raw: Path = path_argument(..., help="A `ferkit pull` folder (its manifest gives labels), or any image folder."),
    out: Path = path_option(..., "--out", help="Output folder: faces/, faces.json, tags.csv, rules.toml, report."),
    detector: str = typer.Option("yunet", help="Face detector (as in `ferkit analyze`)."),
    size: int = typer.Option(64, help="Side of the aligned crops in pixels."),
    min_face: int = typer.Option(40, "--min-face", help="Drop faces whose box side is smaller (pixels)."),
    min_score: float = typer.Option(0.6, "--min-score", help="Drop detections scored lower."),
    min_sharpness: float = typer.Option(
        15.0, "--min-sharpness", help="Drop blurred faces: Laplacian variance of the 64 px grey crop (0: keep all)."
    ),
    multiple: str = typer.Option("largest", help="Photos with several faces: keep the largest, all, or drop."),
) -> None:
    """Detect and align every face of the photos in RAW into crops with their photo's labels and attribution;
    writes tags.csv + rules.toml for a `weak_tags` training source and report.json (drop reasons). Resumable."""
    from ferkit.stock.extract import ExtractOptions, extract_faces

    opts = ExtractOptions(detector, size, min_face, min_score, min_sharpness, multiple).check()
    with progress() as bar:
        task = bar.add_task("extract-faces", total=None)
        report = extract_faces(raw, out, opts, on_progress=lambda d, t: bar.update(task, completed=d, total=t))
    console.print(
        f"{report['photos']} photos: {report['faces_kept']} faces kept ({report['faces_per_photo']:.2f} per photo), "
        f"dropped {report['dropped'] or 'none'}; crops and tags.csv in {out}"
    )
    typer.echo(json.dumps({k: report[k] for k in ("photos", "faces_kept", "faces_per_photo", "dropped")}))
