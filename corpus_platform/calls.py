"""Paid calls on a thread pool, as the LLM judge and the distillation teachers make them.

Each answer is recorded as it completes (in completion order), so a crash loses at most what was in
flight. When `stopped()` turns true after a record (an endpoint that refuses every call: a bad key, an
unknown model, no quota), nothing new is sent: calls that have not started are cancelled, and calls
already in flight are awaited and recorded too, because their answers are being paid for.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def call_all(items: Sequence[T], work: Callable[[T], object], record: Callable[[T, Future], None], *,
             workers: int, name: str, stopped: Callable[[], bool], on_stop: Callable[[], None] | None = None) -> None:
    """`work(item)` for every item on `workers` threads; `record(item, future)` for each that ran. `on_stop`
    runs first on the way out (whatever ended the loop: a stop, an error, an interrupt)."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=name)
    futures = {pool.submit(work, item): item for item in items}
    done: set[Future] = set()
    try:
        for fut in as_completed(futures):
            done.add(fut)
            record(futures[fut], fut)
            if stopped():
                break
    finally:
        if on_stop is not None:
            on_stop()
        for fut in futures:  # stop what has not started
            fut.cancel()
        for fut in futures:  # keep every answer already being paid for
            if fut not in done and not fut.cancelled():
                done.add(fut)
                try:
                    record(futures[fut], fut)
                except Exception:  # noqa: BLE001 - already unwinding; the first error propagates
                    pass
        pool.shutdown(wait=True)
