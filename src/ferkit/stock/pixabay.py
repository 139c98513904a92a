"""The Pixabay search API: ``GET /api/?key=&q=&image_type=photo&per_page=&page=&orientation=``; the answer is
``{total, totalHits, hits: [{id, pageURL, tags, webformatURL, largeImageURL, imageWidth, imageHeight, user,
user_id, …}]}``. The key is a query parameter, so URLs are never shown with their query string."""

from __future__ import annotations

from ferkit.stock.config import PullConfig
from ferkit.stock.sources import SearchPage, Source

LICENCE_URL = "https://pixabay.com/service/license-summary/"
#: ferkit's image_size → the Pixabay field downloaded (fullHDURL and imageURL need approved API access).
SIZES = {"small": "webformatURL", "medium": "webformatURL", "large": "largeImageURL", "original": "largeImageURL"}
#: ferkit's orientation → Pixabay's (no square: square photos are kept by the local size filter only).
ORIENTATION = {"landscape": "horizontal", "portrait": "vertical"}


class Pixabay(Source):
    """Pixabay image search (100 requests a minute per key)."""

    name = "pixabay"
    key_env = "PIXABAY_API_KEY"
    default_base = "https://pixabay.com"

    def search(self, query: str, page: int, cfg: PullConfig) -> SearchPage:
        per_page = min(max(cfg.per_page, 3), 200)
        params: dict[str, object] = {"key": self._key, "q": query[:100], "image_type": "photo"}
        params.update({"per_page": per_page, "page": page, "safesearch": "true"})
        if cfg.orientation in ORIENTATION:
            params["orientation"] = ORIENTATION[cfg.orientation]
        if cfg.min_width or cfg.min_height:
            params.update(min_width=cfg.min_width, min_height=cfg.min_height)
        data = self.client.get_json(f"{self.base_url}/api/", f"pixabay {query!r} page {page}", params, {})
        hits = []
        for item in self.results(data, "hits", "hit"):
            url = self.url(item, SIZES[cfg.image_size], "webformatURL", f"hit {item.get('id')!r}")
            user, user_id = str(item.get("user") or ""), item.get("user_id")
            tags = item.get("tags") if isinstance(item.get("tags"), str) else ""
            profile = f"https://pixabay.com/users/{user}-{user_id}/" if user and user_id else ""
            credit = {"photographer": user, "photographer_url": profile, "licence_url": LICENCE_URL}
            words = [t.strip() for t in tags.split(",") if t.strip()]
            hits.append(
                self.hit(
                    item,
                    url,
                    ("imageWidth", "imageHeight"),
                    page_url=str(item.get("pageURL") or ""),
                    tags=words,
                    **credit,
                )
            )
        total_hits = data.get("totalHits", 0)
        total_hits = total_hits if isinstance(total_hits, int) else 0
        return SearchPage(hits, page * per_page < min(total_hits, 500), total_hits)
