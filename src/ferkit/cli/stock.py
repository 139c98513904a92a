"""Stock-photo commands of the ``ferkit`` CLI: ``pull pexels|pixabay`` and ``extract-faces``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ferkit.cli.app import app, console, path_option, progress

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
