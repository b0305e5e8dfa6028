"""The exact-duplicate key: SHA-256 of the normalized conversation text, roles and turn boundaries included.

`global_dedup` removes same-key examples within a partition and pairs them across partitions through the
`content_hash` column of `corpus.deduplicated_examples` (a join, not a rescan of text).
"""

from __future__ import annotations

import polars as pl

from corpus_platform.curation.hashing import sha256_hex
from corpus_platform.curation.normalize import conversation_text


def with_content_hash(df: pl.DataFrame) -> pl.DataFrame:
    text = df.select(conversation_text().alias("t"))["t"]
    return df.with_columns(sha256_hex(text).alias("content_hash"))
