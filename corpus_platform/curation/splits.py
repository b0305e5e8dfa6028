"""Deterministic train/val/test assignment by a hash of the example's group.

The group is the thread, session or conversation an example belongs to (else the example itself), so
every turn of one conversation lands on the same side of the boundary and test data cannot leak into
training through a sibling. The same corpus always gives the same split, whatever order it was built in.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from corpus_platform.curation.hashing import sha256_hex, unit_interval

GROUP_FIELDS = ("thread_id", "session_id", "conversation_id")


@dataclass(frozen=True)
class SplitSettings:
    train: float = 0.90
    val: float = 0.05
    test: float = 0.05
    salt: str = "corpus-split-v1"

    def __post_init__(self) -> None:
        if abs(self.train + self.val + self.test - 1.0) > 1e-9 or min(self.train, self.val, self.test) < 0:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {self.train}/{self.val}/{self.test}")


def group_key() -> pl.Expr:
    meta = pl.col("metadata")
    found = pl.coalesce([meta.str.json_path_match(f"$.{f}") for f in GROUP_FIELDS])
    return (
        pl.when(found.is_not_null())
        .then(pl.col("source") + pl.lit(":group:") + found)
        .otherwise(pl.col("source") + pl.lit(":example:") + pl.col("example_id"))
    )


def assign_splits(df: pl.DataFrame, settings: SplitSettings) -> pl.DataFrame:
    """Adds `group_key` and `split` (train | val | test)."""
    keyed = df.with_columns(group_key().alias("group_key"))
    groups = keyed.select("group_key").unique()
    salted = groups.select((pl.lit(settings.salt + "\x1f") + pl.col("group_key")).alias("k"))["k"]
    u = unit_interval(sha256_hex(salted))
    groups = groups.with_columns(u.alias("_u")).with_columns(
        pl.when(pl.col("_u") < settings.train)
        .then(pl.lit("train"))
        .when(pl.col("_u") < settings.train + settings.val)
        .then(pl.lit("val"))
        .otherwise(pl.lit("test"))
        .alias("split")
    )
    return keyed.join(groups.select("group_key", "split"), on="group_key", how="left")
