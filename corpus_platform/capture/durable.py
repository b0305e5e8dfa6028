"""Append-only JSONL files that many threads and processes share, and their rotation to gzip.

Why this shape: the landing sensor and the readers see whole files, so a record must never be torn or
interleaved with another. Each record is one complete line written by one `os.write` on an O_APPEND
descriptor while an exclusive `flock` is held (O_APPEND alone does not promise atomic writes on regular
files). A crash loses at most the line being written, and the next writer starts a fresh line after a
torn tail instead of gluing onto it. Stdlib only: apps import this without Dagster or Polars.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
from datetime import date
from pathlib import Path
from typing import Any

# Files this package writes and may rotate: <kind>-<YYYY-MM-DD>.jsonl in a day folder.
ROTATABLE = re.compile(r"^(interactions|feedback)-[\w.-]+\.jsonl$")


def encode_line(record: dict[str, Any]) -> bytes:
    """One JSON line the readers accept: UTF-8, no NaN/Infinity, no raw newline inside."""
    text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str)
    return (text + "\n").encode("utf-8")  # lone surrogates raise UnicodeEncodeError here, not in a reader


def append_line(path: Path, line: bytes, *, fsync: bool = False) -> None:
    """Append one complete line to `path` atomically with respect to every other caller of this function."""
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        raise ValueError("append_line takes exactly one newline-terminated line")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # rotated away while we waited for the lock: open the new file
            if (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
                continue
            data = line
            if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                data = b"\n" + line  # a crash tore the previous line: leave it alone, start ours fresh
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
                if st.st_size == 0:
                    _fsync_dir(path.parent)
            return
        finally:
            os.close(fd)  # releases the lock


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # one call in practice; the loop only guards a short write (disk full, signal)
    while written < len(data):
        written += os.write(fd, data[written:])


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _gunzip(path: Path) -> bytes | None:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError):
        return None


def gzip_file(path: Path) -> Path | None:
    """Compress a closed JSONL file to `.jsonl.gz` atomically (hidden .tmp, fsync, rename), then remove it.

    Holds the writers' lock, so no line is in flight; a writer that opened the file before the removal
    notices the inode changed and appends to a fresh file, which a later rotation compresses under the
    next free name (`<stem>.2.jsonl.gz`). After a crash between rename and removal the next rotation finds
    an identical .gz and only removes the original. Returns the .gz written or found, None if nothing to do.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            return None
        st = os.fstat(fd)
        if (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
            return None  # another process rotated it
        data = _read_all(fd)
        if not data:
            os.unlink(path)
            return None
        stem = path.name[: -len(".jsonl")]
        n = 1
        while True:
            target = path.with_name(f"{stem}.jsonl.gz" if n == 1 else f"{stem}.{n}.jsonl.gz")
            if not target.exists():
                break
            if _gunzip(target) == data:  # a previous rotation crashed after its rename
                os.unlink(path)
                _fsync_dir(path.parent)
                return target
            n += 1
        tmp = path.with_name(f".{target.name}.{os.getpid()}.tmp")  # hidden and .tmp: sensor and readers skip it
        with open(tmp, "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
                gz.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
        _fsync_dir(path.parent)
        os.unlink(path)
        _fsync_dir(path.parent)
        return target
    finally:
        os.close(fd)


def rotate_closed_days(root: Path, today: date) -> list[Path]:
    """Gzip every interactions-/feedback- JSONL file in day folders strictly older than `today`."""
    done: list[Path] = []
    if not root.is_dir():
        return done
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if day >= today:
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and ROTATABLE.match(path.name):
                if (target := gzip_file(path)) is not None:
                    done.append(target)
    return done
