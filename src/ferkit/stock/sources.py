"""What every stock-photo source gives back: :class:`Hit` (one search result with its attribution) and
:class:`SearchPage`; the :class:`Source` base class and the API key from its environment variable."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ferkit.errors import InputError
from ferkit.stock.client import Client
from ferkit.stock.config import PullConfig


@dataclass
class Hit:
    """One search result: where to download it and what attribution needs."""

    source: str
    id: str
    download_url: str
    page_url: str
    photographer: str
    photographer_url: str
    licence_url: str
    width: int
    height: int
    tags: list[str] = field(default_factory=list)
    alt: str = ""

    def metadata(self) -> dict[str, Any]:
        """The attribution record kept in the manifest (the download URL has no key in it)."""
        return asdict(self)


@dataclass
class SearchPage:
    """One page of results; ``has_next``: the API has a further page."""

    hits: list[Hit]
    has_next: bool
    total: int


class Source:
    """A stock-photo search API. ``search`` returns one page or raises ``InputError`` for a malformed answer."""

    name = "base"
    key_env = ""
    default_base = ""

    def __init__(self, client: Client, key: str, base_url: str | None = None) -> None:
        self.client, self._key = client, key
        self.base_url = (base_url or self.default_base).rstrip("/")

    def search(self, query: str, page: int, cfg: PullConfig) -> SearchPage:
        raise NotImplementedError

    def results(self, data: Any, key: str, what: str) -> list[dict[str, Any]]:
        """The result objects listed under ``key`` of an API answer (``InputError`` when it is not in that format)."""
        if not isinstance(data, dict):
            raise malformed(self.name, f"expected an object, got {type(data).__name__}")
        items = field_of(data, key, list, self.name)
        if not all(isinstance(item, dict) for item in items):
            raise malformed(self.name, f"a {what} is not an object")
        return items

    def hit(self, item: dict[str, Any], url: str, size_keys: tuple[str, str], **attribution: Any) -> Hit:
        """A :class:`Hit` of this source from one result: its id and ``size_keys`` (width, height) checked."""
        w, h = (int(field_of(item, k, int, self.name)) for k in size_keys)
        item_id = str(field_of(item, "id", (int, str), self.name))
        return Hit(source=self.name, id=item_id, download_url=url, width=w, height=h, **attribution)

    def url(self, where: dict[str, Any], key: str, fallback: str, what: str) -> str:
        """The download URL under ``key`` (else ``fallback``) of one result."""
        url = where.get(key) or where.get(fallback)
        if not isinstance(url, str) or not url:
            raise malformed(self.name, f"{what} has no {key} URL")
        return url


def malformed(source: str, detail: str) -> InputError:
    """The one-line error of an API answer that is not in the documented format."""
    return InputError(f"{source}: malformed API response ({detail})")


def field_of(item: dict, key: str, kind: type | tuple[type, ...], source: str) -> Any:
    """``item[key]`` checked to be of ``kind`` (``InputError`` naming the field otherwise)."""
    value = item.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise malformed(source, f"field {key!r} is {type(value).__name__}, expected {getattr(kind, '__name__', kind)}")
    return value


def api_key(source: type[Source]) -> str:
    """The key from the source's environment variable; ``InputError`` when it is unset or empty."""
    key = os.environ.get(source.key_env, "").strip()
    if not key:
        raise InputError(f"{source.name}: set the API key in the environment variable {source.key_env}")
    return key
