"""Rows of the decision record (`corpus.decisions`): why every example was kept or dropped."""

from __future__ import annotations

import polars as pl

from corpus_platform.schema import utcnow

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "example_id": pl.Utf8,
    "source": pl.Utf8,
    "date": pl.Date,
    "stage": pl.Utf8,
    "decision": pl.Utf8,
    "rule": pl.Utf8,
    "score": pl.Float64,
    "threshold": pl.Float64,
    "duplicate_of": pl.Utf8,
    "decided_at": pl.Datetime("us"),
}

KEPT, REJECTED, DUPLICATE = "kept", "rejected", "duplicate"


def decision_rows(
    df: pl.DataFrame,
    *,
    stage: str,
    decision: str | pl.Expr,
    rule: str | pl.Expr | None = None,
    score: float | pl.Expr | None = None,
    threshold: float | pl.Expr | None = None,
    duplicate_of: str | pl.Expr | None = None,
) -> pl.DataFrame:
    """Decision rows for every row of `df` (which holds example_id, source, date)."""

    def lit(v, dtype):
        return v.cast(dtype) if isinstance(v, pl.Expr) else pl.lit(v, dtype=dtype)

    return df.select(
        pl.col("example_id"),
        pl.col("source"),
        pl.col("date"),
        pl.lit(stage).alias("stage"),
        lit(decision, pl.Utf8).alias("decision"),
        lit(rule, pl.Utf8).alias("rule"),
        lit(score, pl.Float64).alias("score"),
        lit(threshold, pl.Float64).alias("threshold"),
        lit(duplicate_of, pl.Utf8).alias("duplicate_of"),
        pl.lit(utcnow(), dtype=pl.Datetime("us")).alias("decided_at"),
    )


def empty_decisions() -> pl.DataFrame:
    return pl.DataFrame(schema=DECISION_SCHEMA)


PARTITION = "date = ? AND source = ?"


def stage_writes(table: str, stage: str, kept: pl.DataFrame, decisions: pl.DataFrame, day, source: str) -> list[tuple]:
    """`replace_rows` specs of a partition stage: its table's partition and the stage's decisions for it,
    replaced in one transaction (what the assets and the pipeline benchmark write)."""
    return [(table, kept, PARTITION, [day, source]),
            ("decisions", decisions, f"stage = ? AND {PARTITION}", [stage, day, source])]
