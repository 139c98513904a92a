"""A bounded HTTP client for the stock-photo APIs: timeouts, retries with exponential backoff and jitter, 429 and
the APIs' rate-limit headers (``X-Ratelimit-Limit/Remaining/Reset``), size-capped downloads that must arrive whole.

The API key travels in a header or a query parameter; no message, exception or record this module makes contains a
URL with its query string, so the key never reaches a log or the manifest.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from ferkit.errors import FerkitError, InputError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})


class AuthError(InputError):
    """The API refused the key (401/403): missing, wrong or revoked; no retry helps."""


class FetchError(FerkitError):
    """A request that failed for good (after its retries, or a status no retry helps): one item is skipped."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def safe_url(url: str) -> str:
    """``url`` without its query string and fragment (where an API key may be)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def reset_seconds(value: str | None, now: float) -> float | None:
    """Seconds until a rate-limit window resets: Pexels sends a UNIX timestamp, Pixabay a number of seconds."""
    try:
        v = float(value) if value is not None else None
    except ValueError:
        return None
    if v is None or v != v or v < 0:
        return None
    return max(0.0, v - now) if v > 1e9 else v


@dataclass
class ClientStats:
    """What the client did: requests sent, retries, rate-limit responses and the seconds spent waiting."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {**self.__dict__, "waited_s": round(self.waited_s, 3)}


@dataclass
class Client:
    """GET with bounded retries. ``sleep``/``clock`` are injectable; ``jitter`` in [0, 1] randomises each wait."""

    timeout_s: float = 20.0
    retries: int = 4
    max_wait_s: float = 60.0
    backoff_s: float = 0.5
    jitter: float = 0.25
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - jitter, not security
    stats: ClientStats = field(default_factory=ClientStats)

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ferkit-pull/0.1"
        self._pause_until = 0.0

    def close(self) -> None:
        self.session.close()

    def _wait(self, seconds: float) -> None:
        seconds = min(self.max_wait_s, max(0.0, seconds)) * (1 + self.jitter * self.rng.random())
        if seconds > 0:
            self.stats.waited_s += seconds
            self.sleep(seconds)

    def _note_limits(self, headers: Mapping[str, str]) -> float | None:
        """After a response: when its rate headers say none remain, pause the next request until the reset."""
        remaining = headers.get("X-Ratelimit-Remaining")
        wait = reset_seconds(headers.get("Retry-After") or headers.get("X-Ratelimit-Reset"), self.clock())
        if remaining is not None and remaining.strip() == "0" and wait is not None:
            self._pause_until = self.clock() + min(wait, self.max_wait_s)
        return wait

    def _get(self, url: str, what: str, stream: bool, **kwargs: Any) -> requests.Response:
        where = safe_url(url)
        delay = self.backoff_s
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            if (pause := self._pause_until - self.clock()) > 0:
                self._wait(pause)
            self.stats.requests += 1
            try:
                resp = self.session.get(url, timeout=self.timeout_s, stream=stream, **kwargs)
            except requests.RequestException as e:  # its message holds the URL: never shown
                last = type(e).__name__
                self._wait(delay)
                delay *= 2
                continue
            wait = self._note_limits(resp.headers)
            if resp.status_code in AUTH_STATUS:
                resp.close()
                raise AuthError(f"{what}: the API refused the key (HTTP {resp.status_code}): wrong or revoked")
            if resp.status_code in RETRY_STATUS:
                resp.close()
                last = f"HTTP {resp.status_code}"
                if resp.status_code == 429:
                    self.stats.rate_limited += 1
                self._wait(wait if resp.status_code == 429 and wait is not None else delay)
                delay *= 2
                continue
            if resp.status_code != 200:
                resp.close()
                raise FetchError(f"{what}: {where} answered HTTP {resp.status_code}", resp.status_code)
            return resp
        raise FetchError(f"{what}: {where} failed after {self.retries + 1} tries ({last})")

    def get_json(self, url: str, what: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> Any:
        """The JSON body of a GET (``FetchError`` once retries are spent, ``InputError`` when not JSON)."""
        try:
            resp = self._get(url, what, False, params=dict(params), headers=dict(headers))
        except FetchError as e:
            if e.status is not None and 400 <= e.status < 500:  # a request the API refuses: no rerun helps either
                raise InputError(str(e)) from None
            raise
        try:
            return resp.json()
        except ValueError:
            raise InputError(f"{what}: the API answered something that is not JSON ({safe_url(url)})") from None

    def get_bytes(self, url: str, what: str, max_bytes: int) -> bytes:
        """A whole download of at most ``max_bytes``; a short body (less than its Content-Length) is retried."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            resp = self._get(url, what, True)
            try:
                expected = int(resp.headers.get("Content-Length", "-1"))
            except ValueError:
                expected = -1
            if expected > max_bytes:
                resp.close()
                raise FetchError(f"{what}: larger than {max_bytes >> 20} MB ({expected} bytes)")
            chunks, size, short = [], 0, False
            try:
                for chunk in resp.iter_content(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError(f"{what}: larger than {max_bytes >> 20} MB")
                    chunks.append(chunk)
            except requests.RequestException:  # urllib3 refuses a body shorter than its Content-Length
                short = True
            finally:
                resp.close()
            if not short and (expected < 0 or size == expected):
                return b"".join(chunks)
            if attempt < self.retries:
                self.stats.retries += 1
                self._wait(delay)
                delay *= 2
        raise FetchError(f"{what}: download truncated {self.retries + 1} times ({safe_url(url)})")
