"""``ferkit pull``: run every query of a :class:`~ferkit.stock.config.PullConfig` against one source, page by page,
keep each new photo once (by content hash) with its attribution, and record everything in the raw folder's manifest.

Per query the loop is bounded by ``per_query`` images and ``max_pages`` pages; per request by the client's retries.
A photo that fails to download or is not an image is a skipped entry with its reason; a refused key, a malformed
API answer or a full disk stops the pull with one line, the manifest keeping everything recorded before it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferkit.errors import InputError
from ferkit.media.files import OutputLock, atomic_write_bytes, check_out_dir
from ferkit.stock.client import Client, FetchError
from ferkit.stock.config import PullConfig
from ferkit.stock.manifest import IMAGES, Manifest, load_manifest, remove_orphans
from ferkit.stock.pexels import Pexels
from ferkit.stock.pixabay import Pixabay
from ferkit.stock.sources import Hit, Source, api_key

#: Pillow format → file suffix of the stored image.
SUFFIXES = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


SOURCES: dict[str, type[Source]] = {"pexels": Pexels, "pixabay": Pixabay}


def source_class(name: str) -> type[Source]:
    """The source called ``name`` (``InputError`` naming the known ones)."""
    if name not in SOURCES:
        raise InputError(f"unknown source {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name]


@dataclass
class PullResult:
    """What one pull did (``counts`` are this run's; the manifest holds the totals)."""

    manifest: Path
    counts: dict[str, int]
    client: dict[str, float]
    images_total: int


def image_info(data: bytes) -> tuple[str, int, int]:
    """(suffix, width, height) of image bytes; ``InputError`` when they are not a whole image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                fmt, size = im.format, im.size
                im.load()  # decodes every byte: a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"not an image ({type(e).__name__})") from None
    if fmt not in SUFFIXES:
        raise InputError(f"unsupported image format {fmt}")
    return SUFFIXES[fmt], size[0], size[1]


def passes_filters(hit: Hit, cfg: PullConfig) -> str | None:
    """Why ``hit`` is filtered out by the config's orientation and size filters (None: it passes)."""
    w, h = hit.width, hit.height
    if w < cfg.min_width or h < cfg.min_height:
        return "too_small"
    shape = "square" if abs(w - h) <= 0.1 * max(w, h) else ("landscape" if w > h else "portrait")
    if cfg.orientation != "any" and shape != cfg.orientation:
        return "orientation"
    return None


class Puller:
    """One pull run over a manifest (see :func:`pull`)."""

    def __init__(self, source: Source, cfg: PullConfig, man: Manifest) -> None:
        self.source, self.cfg, self.man = source, cfg, man
        self.counts: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.man.bump(key)

    def _skip(self, hit: Hit, query: str, reason: str) -> None:
        self.man.seen[f"{hit.source}:{hit.id}"] = None
        self.man.skipped.append({"source": hit.source, "id": hit.id, "query": query, "reason": reason})
        self._count("skipped")

    def take(self, hit: Hit, query: str, cls: str) -> bool:
        """Handle one hit; True when the query gains an image (new, or a duplicate it now also tags)."""
        self._count("hits")
        key = f"{hit.source}:{hit.id}"
        if key in self.man.seen:  # the same photo again (another query or page): tag it, no download
            sha = self.man.seen[key]
            if sha is None:
                return False
            self._count("repeats")
            return self.man.add_query(sha, hit.source, query, cls)
        if (why := passes_filters(hit, self.cfg)) is not None:
            self._count(f"filtered_{why}")
            return False
        try:
            data = self.source.client.get_bytes(hit.download_url, f"{key}", int(self.cfg.max_image_mb * 2**20))
        except FetchError as e:
            self._skip(hit, query, f"download failed: {e}")
            return False
        try:
            suffix, width, height = image_info(data)
        except InputError as e:
            self._skip(hit, query, str(e))
            return False
        sha = hashlib.sha256(data).hexdigest()
        self.man.seen[key] = sha
        if sha in self.man.images:  # the same bytes under another id or source
            self._count("duplicates")
            self.man.images[sha]["hits"].append(hit.metadata())
            return self.man.add_query(sha, hit.source, query, cls)
        rel = f"{IMAGES}/{sha[:20]}.{suffix}"
        atomic_write_bytes(self.man.folder / rel, data)
        self.man.images[sha] = {
            "file": rel,
            "sha256": sha,
            "bytes": len(data),
            "width": width,
            "height": height,
            "hits": [hit.metadata()],
            "queries": [],
        }
        self._count("downloaded")
        return self.man.add_query(sha, hit.source, query, cls)

    def run_query(self, cls: str, query: str, tick: Callable[[int], None]) -> None:
        state = self.man.query(self.source.name, query)
        while not state.done and state.kept < self.cfg.per_query and state.next_page <= self.cfg.max_pages:
            page = self.source.search(query, state.next_page, self.cfg)
            self._count("pages")
            whole = True
            for hit in page.hits:
                if state.kept >= self.cfg.per_query:
                    whole = False  # a rerun with a higher limit asks this page again (its photos are known)
                    break
                if self.take(hit, query, cls):
                    state.kept += 1
                    tick(1)
            if whole:
                state.next_page += 1
                state.done = not page.has_next or not page.hits
            self.man.save()


def pull(
    source_name: str,
    cfg: PullConfig,
    out: Path,
    base_url: str | None = None,
    key: str | None = None,
    client: Client | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PullResult:
    """Pull every query of ``cfg`` from ``source_name`` into ``out`` (resumable; see the module doc). The key comes
    from the source's environment variable unless given; ``base_url`` points the client at another server."""
    cls = source_class(source_name)
    key = key if key is not None else api_key(cls)
    out = check_out_dir(out, "pull output folder")
    client = client or Client(timeout_s=cfg.timeout_s, retries=cfg.retries, max_wait_s=cfg.max_wait_s)
    source = cls(client, key, base_url)
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out / "manifest.json"):
        man = load_manifest(out)
        remove_orphans(man)
        for c, qs in cfg.classes.items():
            man.classes[c] = list(dict.fromkeys([*man.classes.get(c, []), *qs]))
        puller = Puller(source, cfg, man)
        total = len(cfg.queries()) * cfg.per_query
        done = sum(min(man.query(source.name, q).kept, cfg.per_query) for _, q in cfg.queries())
        try:
            for c, q in cfg.queries():

                def tick(n: int) -> None:
                    nonlocal done
                    done += n
                    if on_progress:
                        on_progress(done, total)

                puller.run_query(c, q, tick)
        finally:
            man.save()
            client.close()
    return PullResult(man.path, puller.counts, client.stats.as_dict(), len(man.images))
