"""One politeness and retry policy for every live connector.

A token-bucket rate limiter keeps a client under an API's published rate; `retry` wraps one request
with bounded exponential backoff that honors a server's Retry-After. Connectors classify their own
client library's exceptions into `Retryable(delay_hint)` or let them propagate.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """Raised (or mapped to) by a connector for 429/5xx/timeouts; `retry_after` in seconds if the server said."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhausted(RuntimeError):
    pass


@dataclass
class RateLimiter:
    """Token bucket: at most `rate` requests per second on average, bursts up to `burst`."""

    rate: float
    burst: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(init=False)
    _last: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self._tokens = float(self.burst)
        self._last = self.clock()

    def acquire(self) -> float:
        """Take one token, sleeping as needed; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            self._tokens -= 1
        if wait:
            self.sleep(wait)
        return wait


@dataclass(frozen=True)
class BackoffPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.1  # fraction of the delay added at random, so clients do not retry in lockstep

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        d = min(self.base_delay * (2**attempt), self.max_delay)
        return d * (1 + self.jitter * random.random())


def retry(call: Callable[[], T], policy: BackoffPolicy, *, classify: Callable[[Exception], Retryable | None] = lambda e: None,
          limiter: RateLimiter | None = None, sleep: Callable[[float], None] = time.sleep,
          on_retry: Callable[[int, Exception, float], None] | None = None) -> T:
    """Run `call` under the rate limit; retry what `classify` marks retryable, at most `max_retries` times."""
    attempt = 0
    while True:
        if limiter is not None:
            limiter.acquire()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified below; everything else propagates unchanged
            retryable = exc if isinstance(exc, Retryable) else classify(exc)
            if retryable is None:
                raise
            if attempt >= policy.max_retries:
                raise RetriesExhausted(f"gave up after {attempt + 1} attempts: {retryable}") from exc
            delay = policy.delay(attempt, retryable.retry_after)
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            sleep(delay)
            attempt += 1
