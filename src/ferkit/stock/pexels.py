"""The Pexels search API: ``GET /v1/search?query=&per_page=&page=&orientation=`` with the key in the
``Authorization`` header; the answer is ``{photos: [{id, url, photographer, photographer_url, alt, width, height,
src: {original, large, medium, small, …}}], page, per_page, total_results, next_page}``."""

from __future__ import annotations

from ferkit.stock.config import PullConfig
from ferkit.stock.sources import SearchPage, Source, field_of

LICENCE_URL = "https://www.pexels.com/license/"
#: ferkit's image_size → the Pexels ``src`` key downloaded.
SIZES = {"small": "small", "medium": "medium", "large": "large", "original": "original"}


class Pexels(Source):
    """Pexels photo search (200 requests an hour on a free key)."""

    name = "pexels"
    key_env = "PEXELS_API_KEY"
    default_base = "https://api.pexels.com"

    def search(self, query: str, page: int, cfg: PullConfig) -> SearchPage:
        params: dict[str, object] = {"query": query, "per_page": min(cfg.per_page, 80), "page": page}
        if cfg.orientation != "any":
            params["orientation"] = cfg.orientation
        data = self.client.get_json(
            f"{self.base_url}/v1/search", f"pexels {query!r} page {page}", params, {"Authorization": self._key}
        )
        hits = []
        for item in self.results(data, "photos", "photo"):
            src = field_of(item, "src", dict, self.name)
            url = self.url(src, SIZES[cfg.image_size], "original", f"photo {item.get('id')!r}")
            credit = {"photographer": str(item.get("photographer") or ""), "licence_url": LICENCE_URL}
            credit.update(page_url=str(item.get("url") or ""), photographer_url=str(item.get("photographer_url") or ""))
            hits.append(self.hit(item, url, ("width", "height"), alt=str(item.get("alt") or ""), **credit))
        total = data.get("total_results", len(hits))
        return SearchPage(hits, bool(data.get("next_page")), total if isinstance(total, int) else len(hits))
