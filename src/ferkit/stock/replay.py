"""A local stand-in for the Pexels and Pixabay APIs on 127.0.0.1, for tests, benchmarks and demos without the
internet: it answers in the APIs' documented formats and serves real image bytes from a data folder.

Answers come from *recorded exchanges* (JSON files: ``{"source", "query", "page", "status", "headers", "body"}``,
several for one request are replayed in turn, the last one repeating; ``{base}`` in a body is this server's URL)
or, for requests none matches, from a *catalogue* of tagged images searched by keywords (a hit has every query
keyword among its tags). Rate limiting (``RateLimit``: 429 plus the APIs' ``X-Ratelimit-*`` headers), a revoked
key (403), an unknown key (401; Pixabay: 400), truncated downloads and 500s are switched on per server.
"""

from __future__ import annotations

import json
import mimetypes
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ferkit.errors import InputError
from ferkit.stock.config import query_keywords

JUNK = b"<html><body>Sorry, this photo was removed.</body></html>\n"


@dataclass
class CatalogueItem:
    """One image the catalogue search can return: its file under the data folder and its tags."""

    id: int
    file: str  # relative to the data folder
    tags: list[str]
    width: int = 640
    height: int = 800
    label: str = ""  # the true class (kept for the stand-in's report; never sent)


@dataclass
class RateLimit:
    """At most ``limit`` API requests per ``window_s`` seconds; beyond it a 429."""

    limit: int
    window_s: float
    _start: float = 0.0
    _used: int = 0

    def take(self, now: float) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets)."""
        if now - self._start >= self.window_s:
            self._start, self._used = now, 0
        reset = self._start + self.window_s - now
        if self._used >= self.limit:
            return False, 0, reset
        self._used += 1
        return True, self.limit - self._used, reset


@dataclass
class Exchange:
    """One recorded answer."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class ReplayServer:
    """The server (a context manager): ``with ReplayServer(data) as srv: pull(..., base_url=srv.base_url)``."""

    data_root: Path
    key: str = "replay-key"
    revoked_keys: frozenset[str] = frozenset({"revoked-key"})
    recorded: dict[tuple[str, str, int], list[Exchange]] = field(default_factory=dict)
    catalogue: list[CatalogueItem] = field(default_factory=list)
    rate_limit: RateLimit | None = None
    truncate_once: set[str] = field(default_factory=set)  # download paths whose first answer is cut short
    fail_once: dict[str, int] = field(default_factory=dict)  # path → status of its first answer
    requests: list[str] = field(default_factory=list)  # every path asked for (no query string)

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root).resolve()
        self._calls: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ReplayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.handle(self)

            def log_message(self, *args: object) -> None:  # quiet: the key may be in a query string
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------ answers

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path, params = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(path)
            status = self.fail_once.pop(path, None)
        if status is not None:
            return self._send(h, status, {"error": "injected failure"}, {})
        if path == "/v1/search":
            return self._api(h, "pexels", h.headers.get("Authorization", ""), params.get("query", ""), params)
        if path in ("/api", "/api/"):
            return self._api(h, "pixabay", params.get("key", ""), params.get("q", ""), params)
        if path.startswith("/data/"):
            return self._file(h, path, path[len("/data/") :])
        if path.startswith("/junk/"):
            return self._raw(h, 200, JUNK, "image/jpeg")
        self._send(h, 404, {"error": "not found"}, {})

    def _api(self, h: BaseHTTPRequestHandler, source: str, key: str, query: str, params: dict[str, str]) -> None:
        if key in self.revoked_keys:
            return self._send(h, 403, {"error": "Forbidden: this API key was revoked"}, {})
        if key != self.key:
            if source == "pixabay":
                return self._raw(h, 400, b"[ERROR 400] Invalid or missing API key", "text/plain")
            return self._send(h, 401, {"error": "Unauthorized"}, {})
        headers: dict[str, str] = {}
        if self.rate_limit is not None:
            with self._lock:
                ok, remaining, reset = self.rate_limit.take(time.monotonic())
            prefix = "X-Ratelimit" if source == "pexels" else "X-RateLimit"
            # Pexels sends the reset as a UNIX timestamp, Pixabay as seconds to wait.
            reset_value = f"{time.time() + reset:.3f}" if source == "pexels" else f"{reset:.3f}"
            headers = {f"{prefix}-Limit": str(self.rate_limit.limit), f"{prefix}-Remaining": str(remaining)}
            headers[f"{prefix}-Reset"] = reset_value
            if not ok:
                return self._send(h, 429, {"error": "Too Many Requests"}, headers)
        page = _int(params.get("page"), 1)
        per_page = _int(params.get("per_page"), 15 if source == "pexels" else 20)
        rec = self._recorded(source, query, page)
        if rec is not None:
            body = json.loads(json.dumps(rec.body).replace("{base}", self.base_url))
            return self._send(h, rec.status, body, {**headers, **rec.headers})
        body = self._search(source, query, page, max(1, min(per_page, 200)))
        self._send(h, 200, body, headers)

    def _recorded(self, source: str, query: str, page: int) -> Exchange | None:
        key = (source, query, page)
        if key not in self.recorded:
            return None
        with self._lock:
            n = self._calls.get(key, 0)
            self._calls[key] = n + 1
        answers = self.recorded[key]
        return answers[min(n, len(answers) - 1)]

    def _search(self, source: str, query: str, page: int, per_page: int) -> dict[str, Any]:
        words = set(query_keywords(query))
        found = [it for it in self.catalogue if words and words <= set(it.tags)]
        chunk = found[(page - 1) * per_page : page * per_page]
        if source == "pexels":
            photos = [_pexels_photo(it, self.base_url) for it in chunk]
            more = page * per_page < len(found)
            nxt = f"{self.base_url}/v1/search?page={page + 1}&per_page={per_page}&query={query}" if more else None
            body = {"page": page, "per_page": per_page, "photos": photos, "total_results": len(found)}
            return {**body, **({"next_page": nxt} if nxt else {})}
        hits = [_pixabay_hit(it, self.base_url) for it in chunk]
        return {"total": len(found), "totalHits": min(len(found), 500), "hits": hits}

    # ------------------------------------------------------------------------------------------------ bytes

    def _file(self, h: BaseHTTPRequestHandler, path: str, rel: str) -> None:
        file = (self.data_root / rel).resolve()
        if self.data_root not in file.parents or not file.is_file():
            return self._send(h, 404, {"error": "not found"}, {})
        data = file.read_bytes()
        with self._lock:
            cut = path in self.truncate_once
            self.truncate_once.discard(path)
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self._raw(h, 200, data, ctype, send=data[: len(data) // 2] if cut else data)

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        self._raw(h, status, json.dumps(body).encode(), "application/json", headers)

    @staticmethod
    def _raw(
        h: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
        send: bytes | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))  # a truncated answer promises more than it sends
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(data if send is None else send)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if send is not None:
            h.close_connection = True


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _pexels_photo(it: CatalogueItem, base: str) -> dict[str, Any]:
    url = f"{base}/data/{it.file}"
    sizes = ("original", "large2x", "large", "medium", "small", "portrait", "landscape", "tiny")
    return {
        "id": it.id,
        "width": it.width,
        "height": it.height,
        "url": f"https://www.pexels.com/photo/{it.id}/",
        "photographer": f"Photographer {it.id % 97}",
        "photographer_url": f"https://www.pexels.com/@photographer-{it.id % 97}",
        "photographer_id": it.id % 97,
        "avg_color": "#808080",
        "src": {k: url for k in sizes},
        "liked": False,
        "alt": " ".join(it.tags),
    }


def _pixabay_hit(it: CatalogueItem, base: str) -> dict[str, Any]:
    url = f"{base}/data/{it.file}"
    return {
        "id": it.id,
        "pageURL": f"https://pixabay.com/photos/{it.id}/",
        "type": "photo",
        "tags": ", ".join(it.tags),
        "previewURL": url,
        "webformatURL": url,
        "largeImageURL": url,
        "imageWidth": it.width,
        "imageHeight": it.height,
        "user_id": it.id % 89,
        "user": f"user{it.id % 89}",
    }


def load_recorded(files: Iterable[Path]) -> dict[tuple[str, str, int], list[Exchange]]:
    """Recorded exchanges from JSON files (one exchange or a list each), grouped by (source, query, page)."""
    out: dict[tuple[str, str, int], list[Exchange]] = {}
    for f in files:
        try:
            data = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(f"{f}: not a readable recorded exchange ({e})") from None
        for ex in data if isinstance(data, list) else [data]:
            key = (str(ex["source"]), str(ex["query"]), int(ex.get("page", 1)))
            out.setdefault(key, []).append(
                Exchange(int(ex.get("status", 200)), dict(ex.get("headers", {})), ex["body"])
            )
    return out
