"""One DuckDB session at a time on a warehouse file, across processes: an flock held exactly while a
connection is open.

DuckDB lets one process open a database file read-write; a second process fails at once ("Could not
set lock on file"). A Dagster pool with one slot prevented that by serializing whole steps (process
start and compute included) and handing the slot on by polling (1 s, growing to 15 s): a 14-day
backfill spent most of its hour waiting. This lock is taken only around the connection, the kernel
hands it to the next waiter the moment it is released, and it also covers processes outside Dagster
(the demo summary, the CLI). It does not span machines: a deployment whose steps run on several
hosts keeps the `warehouse` pool at one slot (README, Production).

Within a process the lock is shared: nested `with` blocks and threads hold one flock (DuckDB shares
one database instance per file in a process), released when the last of them leaves. A forked child
drops the state it inherited without unlocking (that would release the parent's lock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)
TRACE_ENV = "CORPUS_WAREHOUSE_LOCK_TRACE"  # a file: one "pid acquired released waited" line per hold


class _Held:
    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self.fd: int | None = None
        self.depth = 0
        self.acquired = 0.0
        self.waited = 0.0


_held: dict[str, _Held] = {}
_registry = threading.Lock()


def _reset_after_fork() -> None:
    global _registry
    for held in _held.values():
        if held.fd is not None:
            try:
                os.close(held.fd)  # closing, not LOCK_UN: the parent still holds it
            except OSError:
                pass
    _held.clear()
    _registry = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def lock_path(database: str | Path) -> Path:
    return Path(f"{database}.lock")


@contextmanager
def warehouse_lock(database: str | Path) -> Iterator[float]:
    """Hold the warehouse's lock for the block; yields the seconds this process waited for it."""
    key = str(lock_path(database).resolve())
    with _registry:
        held = _held.setdefault(key, _Held())
    with held.mutex:
        if held.depth == 0:
            fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
            start = time.monotonic()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for the warehouse lock %s (held by pid %s)", key, _holder(fd))
                fcntl.flock(fd, fcntl.LOCK_EX)
            held.fd, held.waited, held.acquired = fd, time.monotonic() - start, time.time()
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        held.depth += 1
        waited = held.waited
    try:
        yield waited
    finally:
        with held.mutex:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                _trace(held)
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)
                held.fd = None


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip() or "?"
    except OSError:
        return "?"


def _trace(held: _Held) -> None:
    path = os.environ.get(TRACE_ENV)
    if path:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {held.acquired:.6f} {time.time():.6f} {held.waited:.6f}\n")
