"""Exact deduplication on the SHA-256 of the normalized conversation text.

Within a partition the example with the smallest example_id is kept (a deterministic rule that does
not depend on file order); across partitions, a hash already kept by another partition makes this
one a duplicate of that example. The index is the `content_hash` column of
`corpus.deduplicated_examples`, so a new day costs a join against the index, not a rescan of text.
"""

from __future__ import annotations

import polars as pl

from corpus_platform.curation.decisions import DUPLICATE, KEPT, decision_rows
from corpus_platform.curation.hashing import sha256_hex
from corpus_platform.curation.normalize import conversation_text


def with_content_hash(df: pl.DataFrame) -> pl.DataFrame:
    text = df.select(conversation_text().alias("t"))["t"]
    return df.with_columns(sha256_hex(text).alias("content_hash"))


def dedup_exact(df: pl.DataFrame, index: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept examples with content_hash, decision rows). `index` holds (content_hash, example_id)
    of examples kept by *other* partitions."""
    hashed = df if "content_hash" in df.columns else with_content_hash(df)
    owners = (
        index.group_by("content_hash").agg(pl.col("example_id").min().alias("_prior"))
        if index.height
        else pl.DataFrame(schema={"content_hash": pl.Utf8, "_prior": pl.Utf8})
    )
    hashed = hashed.with_columns(
        pl.col("example_id").min().over("content_hash").alias("_first_here")
    ).join(owners, on="content_hash", how="left")
    hashed = hashed.with_columns(
        pl.when(pl.col("_prior").is_not_null())
        .then(pl.col("_prior"))
        .when(pl.col("example_id") != pl.col("_first_here"))
        .then(pl.col("_first_here"))
        .otherwise(None)
        .alias("_duplicate_of")
    )
    kept = hashed.filter(pl.col("_duplicate_of").is_null())
    dups = hashed.filter(pl.col("_duplicate_of").is_not_null())
    decisions = pl.concat(
        [
            decision_rows(kept, stage="dedup", decision=KEPT),
            decision_rows(dups, stage="dedup", decision=DUPLICATE, rule=pl.lit("exact_sha256"),
                          duplicate_of=pl.col("_duplicate_of")),
        ]
    )
    columns = [c for c in df.columns if c != "content_hash"] + ["content_hash"]
    return kept.select(columns).sort("example_id"), decisions
