"""Authentication, per-key rate limits and the request-size limit.

Keys are compared as SHA-256 digests with `hmac.compare_digest` against every configured key (no early
exit), so timing reveals neither which key nor how much of it matched. The body limit is enforced in an
ASGI middleware before any parsing, including for chunked bodies that carry no Content-Length.
Rate buckets live in the worker's memory: with N uvicorn workers a key gets up to N times its rate.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time

from corpus_platform.api.config import ApiKey, digest


def find_key(keys: tuple[ApiKey, ...], secret: str | None) -> ApiKey | None:
    """The key whose secret is `secret`, compared in constant time; None when none matches."""
    if not secret:
        return None
    given = digest(secret)
    found = None
    for key in keys:
        if hmac.compare_digest(given, key.digest):
            found = key
    return found


class RateLimiter:
    """Token buckets per key id: `rate` tokens per second up to `burst`; each request takes one."""

    def __init__(self, default: tuple[float, float], per_key: dict[str, tuple[float, float]] | None = None):
        self.default = default
        self.per_key = per_key or {}
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float | None:
        """None when the request may pass, else the seconds until a token is available."""
        rate, burst = self.per_key.get(key_id, self.default)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 before the app reads any of it."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._reject(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._reject(send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _reject(self, send) -> None:
        payload = json.dumps({"detail": f"request body exceeds {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
