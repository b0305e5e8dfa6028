"""A small warehouse with a known decision record: two sources, every kind of automatic decision.

Per source, 40 examples i = 0..39 on 2026-01-01, routed by i % 10:

    0      rejected by the filter (min_distinct_words 3 vs 8): only raw_examples has it; its answer holds an
           e-mail address, so bringing it back must mask it
    1      exact duplicate at dedup of example i + 5 (same text; filtered_examples has it)
    2..3   rejected at score, quality 2.5 (borderline: min_quality 3)
    4..5   kept, quality 3.5 (borderline)
    6..9   kept, quality 8 (clearly)

plus, in `public` only, example 40: an empty assistant turn rejected by the filter (`empty_turn`).
"""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb
import polars as pl
import pytest

from corpus_platform.curation.decisions import decision_rows
from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.schema import EXAMPLE_SCHEMA
from corpus_platform.warehouse import migrate, replace_rows

DAY = date(2026, 1, 1)
SOURCES = ("public", "conversations")
MIN_QUALITY = 3.0


def example_id(source: str, i: int) -> str:
    return f"{source[:3]}-{i:03d}"


def _example(source: str, i: int) -> dict:
    kind = i % 10
    n = i + 5 if kind == 1 else i  # a duplicate has the text of a kept example
    answer = f"Example {n} of {source}: the capital of France is Paris, a city on the river Seine."
    if kind == 0:
        answer = f"Write to me at person{i}@example.com about example {i} of {source}."
    if i == 40:
        answer = ""
    return {
        "example_id": example_id(source, i), "source": source, "date": DAY, "source_id": f"{source}-{i}",
        "messages": [{"role": "user", "content": f"Question {n} from {source}?"}, {"role": "assistant", "content": answer}],
        "metadata": json.dumps({"author": f"user-{i % 4}", "thread_id": f"t{i}"}),
        "collected_at": datetime(2026, 1, 1, 12),
    }


def build(con: duckdb.DuckDBPyConnection, order: int = 1) -> None:
    """Fill a migrated warehouse with the decision record above (`order` -1 inserts rows reversed)."""
    rows = [_example(s, i) for s in SOURCES for i in range(40)] + [_example("public", 40)]
    raw = pl.DataFrame(rows[::order], schema=EXAMPLE_SCHEMA)
    kind = pl.col("source_id").str.extract(r"-(\d+)$").cast(pl.Int64) % 10
    is_empty = pl.col("source_id") == "public-40"
    filtered = raw.filter((kind != 0) & ~is_empty)
    hashed = with_content_hash(filtered)
    dedup = hashed.filter(kind != 1)
    quality = pl.when(kind <= 3).then(2.5).when(kind <= 5).then(3.5).otherwise(8.0)
    scored = dedup.with_columns(quality.alias("quality_score"), pl.lit('{"length": 0.5}').alias("score_detail"))
    owner = lambda df: df.with_columns(  # noqa: E731  the example a duplicate repeats
        (pl.col("example_id").str.slice(0, 4) + (pl.col("source_id").str.extract(r"-(\d+)$").cast(pl.Int64) + 5)
         .cast(pl.Utf8).str.zfill(3)).alias("_of"))
    decisions = pl.concat([
        decision_rows(raw.filter(kind == 0), stage="filter", decision="rejected", rule="min_distinct_words", score=3.0, threshold=8.0),
        decision_rows(raw.filter(is_empty), stage="filter", decision="rejected", rule="empty_turn", score=1.0, threshold=0.0),
        decision_rows(filtered, stage="filter", decision="kept"),
        decision_rows(owner(hashed.filter(kind == 1)), stage="dedup", decision="duplicate", rule="exact_sha256",
                      score=1.0, threshold=1.0, duplicate_of=pl.col("_of")),
        decision_rows(dedup, stage="dedup", decision="kept"),
        decision_rows(scored.filter(pl.col("quality_score") >= MIN_QUALITY), stage="score", decision="kept",
                      score=pl.col("quality_score"), threshold=MIN_QUALITY),
        decision_rows(scored.filter(pl.col("quality_score") < MIN_QUALITY), stage="score", decision="rejected",
                      rule="min_quality_score", score=pl.col("quality_score"), threshold=MIN_QUALITY),
    ])
    replace_rows(con, [
        ("raw_examples", raw, "TRUE", []),
        ("filtered_examples", filtered, "TRUE", []),
        ("deduplicated_examples", dedup, "TRUE", []),
        ("scored_examples", scored.filter(pl.col("quality_score") >= MIN_QUALITY), "TRUE", []),
        ("decisions", decisions, "TRUE", []),
    ])


@pytest.fixture
def con(tmp_path):
    """A migrated warehouse file under a temp CORPUS_HOME, filled by `build`."""
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(c)
    build(c)
    yield c
    c.close()
