"""Fixtures for the file-based sources: a dated landing folder and a writer for JSON(L)/gzip files."""

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
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing" / "2024-05-01"
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
    otherwise (bytes written raw); gzip-compressed when name ends with .gz."""

    def _write(name: str, items: Any) -> Path:
        path = landing / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.removesuffix(".gz").endswith(".jsonl"):
            data = b"\n".join(_line(i) for i in items) + b"\n"
        else:
            data = items if isinstance(items, bytes) else json.dumps(items, ensure_ascii=False).encode("utf-8")
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        return path

    return _write

