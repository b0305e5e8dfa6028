"""Fixtures for the file-based sources: a dated landing folder and a writer for JSON(L)/gzip files.

The landing folder is `<landing root>/<YYYY-MM-DD>` as in production, so the paths the readers report
(files, quarantine `file`, metadata `file`, public source ids) start with that partition folder name.
"""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest


@pytest.fixture
def day() -> date:
    return date(2024, 5, 1)


@pytest.fixture
def landing(tmp_path: Path, day: date) -> Path:
    """The partition folder of `day` (named 2024-05-01) under a source's landing root."""
    folder = tmp_path / "landing" / day.isoformat()
    folder.mkdir(parents=True)
    return folder


def _line(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    return json.dumps(item, ensure_ascii=False).encode("utf-8")


@pytest.fixture
def write(landing: Path) -> Callable[..., Path]:
    """write(name, items): JSONL when items is a list (dicts dumped, str/bytes written raw), a JSON document
    otherwise (bytes written raw); gzip-compressed when name ends with .gz. Written into `landing` unless
    `folder` names another partition folder (created if missing)."""

    def _write(name: str, items: Any, folder: Path | None = None) -> Path:
        path = (landing if folder is None else folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.removesuffix(".gz").endswith(".jsonl"):
            data = b"\n".join(_line(i) for i in items) + b"\n"
        else:
            data = items if isinstance(items, bytes) else json.dumps(items, ensure_ascii=False).encode("utf-8")
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return path

    return _write

