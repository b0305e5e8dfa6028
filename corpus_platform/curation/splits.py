"""Deterministic train/val/test assignment by a hash of the example's group.

The group is the thread, session or conversation an example belongs to (else the example itself), so
every turn of one conversation lands on the same side of the boundary and test data cannot leak into
training through a sibling. Related near-duplicates (verified Jaccard between the split-grouping and the
dedup thresholds: both kept) merge their groups, so a paraphrase cannot sit on the other side either. The same corpus always gives the same split, whatever order it was built in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def merge_groups(keyed: pl.DataFrame, links: pl.DataFrame | None) -> pl.DataFrame:
    """Replace `group_key` by the smallest key of its connected component, where `links` (id_a, date_a,
    id_b, date_b: e.g. related near-duplicate pairs) join the groups of their two examples."""
    if links is None or links.height == 0:
        return keyed
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    node = keyed.select("example_id", "date", "group_key")
    ends = (links.join(node.rename({"example_id": "id_a", "date": "date_a", "group_key": "g_a"}), on=["id_a", "date_a"])
            .join(node.rename({"example_id": "id_b", "date": "date_b", "group_key": "g_b"}), on=["id_b", "date_b"]))
    groups = keyed.select(pl.col("group_key").unique().sort()).with_row_index("gi")
    e = (ends.join(groups.rename({"group_key": "g_a", "gi": "u"}), on="g_a")
         .join(groups.rename({"group_key": "g_b", "gi": "v"}), on="g_b"))
    n = groups.height
    graph = coo_matrix((np.ones(e.height, np.int8), (e["u"].to_numpy(), e["v"].to_numpy())), shape=(n, n))
    label = connected_components(graph, directed=False)[1]
    groups = groups.with_columns(pl.Series("_c", label)).with_columns(
        pl.col("group_key").min().over("_c").alias("_merged"))  # sorted keys: min = first of the component
    return (keyed.join(groups.select("group_key", "_merged"), on="group_key", how="left")
            .with_columns(pl.col("_merged").alias("group_key")).drop("_merged"))


def assign_splits(df: pl.DataFrame, settings: SplitSettings, links: pl.DataFrame | None = None) -> pl.DataFrame:
    """Adds `group_key` and `split` (train | val | test). Examples joined by `links` share a group."""
    keyed = merge_groups(df.with_columns(group_key().alias("group_key")), links)
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
