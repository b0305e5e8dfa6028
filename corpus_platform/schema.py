"""The canonical example: one Polars schema that every source produces and every stage consumes.

Mirrored as DDL in `sql/001_init.sql` (table `corpus.raw_examples`; `sql/003_raw_ingest_run.sql` adds the
lineage column `ingest_run_id`, which the raw_examples asset sets, not the sources). `messages` is the single
representation of content: exporters and curation steps read turns, never source-specific fields.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from typing import Any, Iterable

import polars as pl

ROLES = ("system", "user", "assistant")

MESSAGE = pl.Struct({"role": pl.Utf8, "content": pl.Utf8})

EXAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "example_id": pl.Utf8,
    "source": pl.Utf8,
    "date": pl.Date,
    "source_id": pl.Utf8,
    "messages": pl.List(MESSAGE),
    "metadata": pl.Utf8,  # a JSON object: author, engagement, url, created_at, thread/session ids, ...
    "collected_at": pl.Datetime("us"),  # naive UTC
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8,
    "date": pl.Date,
    "file": pl.Utf8,
    "line": pl.Int64,  # 1-based line (JSONL) or record index (JSON array); 0 = the whole file
    "reason": pl.Utf8,
    "raw": pl.Utf8,  # the offending input, truncated to RAW_PREVIEW_CHARS
    "quarantined_at": pl.Datetime("us"),
}

RAW_PREVIEW_CHARS = 2000


def example_id(source: str, source_id: str) -> str:
    """Stable id: the same source item always gets the same id, whatever day or file it arrives in."""
    return hashlib.sha256(f"{source}\x1f{source_id}".encode("utf-8")).hexdigest()[:20]


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def make_example(
    *,
    source: str,
    source_id: str,
    day: date,
    messages: list[dict[str, str]],
    metadata: dict[str, Any] | None = None,
    collected_at: datetime | None = None,
) -> dict[str, Any]:
    """One canonical row as a dict; validates roles so a bad turn never reaches a frame."""
    for m in messages:
        if m.get("role") not in ROLES:
            raise ValueError(f"unknown role {m.get('role')!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"content of a {m.get('role')} turn is not a string")
    return {
        "example_id": example_id(source, source_id),
        "source": source,
        "date": day,
        "source_id": source_id,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "metadata": json.dumps(metadata or {}, sort_keys=True, ensure_ascii=False, default=str),
        "collected_at": collected_at or utcnow(),
    }


def examples_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=EXAMPLE_SCHEMA, orient="row") if rows else empty_examples()


def empty_examples() -> pl.DataFrame:
    return pl.DataFrame(schema=EXAMPLE_SCHEMA)


def quarantine_row(*, source: str, day: date, file: str, line: int, reason: str, raw: str | bytes) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return {
        "source": source,
        "date": day,
        "file": file,
        "line": line,
        "reason": reason,
        "raw": raw[:RAW_PREVIEW_CHARS],
        "quarantined_at": utcnow(),
    }


def quarantine_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA, orient="row") if rows else pl.DataFrame(schema=QUARANTINE_SCHEMA)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType] = EXAMPLE_SCHEMA) -> pl.DataFrame:
    """Select and cast to the schema's columns in order; fails loudly on a missing column."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"frame lacks canonical columns {missing}")
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])
