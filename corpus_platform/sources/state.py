"""Durable connector state under CORPUS_HOME/state: checkpoints per (source, day) and a spool of the
items already fetched, so a run killed mid-scrape resumes without refetching or re-paying.

Checkpoints are JSON replaced atomically; the spool is append-only JSONL written one whole line at a
time (a crash loses at most the line being written, which `read_spool` skips).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Iterator


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class PartitionState:
    """Checkpoint + spool of one source's one day."""

    root: Path  # CORPUS_HOME/state
    source: str
    day: date

    @property
    def folder(self) -> Path:
        return self.root / self.source / self.day.isoformat()

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.json"

    @property
    def spool_path(self) -> Path:
        return self.folder / "items.jsonl"

    def load_checkpoint(self) -> dict[str, Any]:
        try:
            return json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        atomic_write_text(self.checkpoint_path, json.dumps(checkpoint, sort_keys=True, default=str))

    def append(self, items: list[dict[str, Any]]) -> None:
        """Append fetched items (each one JSON line); call before advancing the checkpoint past them."""
        if not items:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = "".join(json.dumps(i, sort_keys=True, ensure_ascii=False, default=str) + "\n" for i in items)
        fd = os.open(self.spool_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                payload = "\n" + payload  # a crash tore the last line: never write onto the fragment
            os.write(fd, payload.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read_spool(self) -> Iterator[dict[str, Any]]:
        """Items fetched so far, in fetch order; torn lines (a crash mid-write) are skipped."""
        if not self.spool_path.exists():
            return
        with open(self.spool_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def reset(self) -> None:
        """Forget this partition's fetch (a user asked for a full refetch)."""
        for p in (self.checkpoint_path, self.spool_path):
            p.unlink(missing_ok=True)
