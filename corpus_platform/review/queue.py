"""The daily review queue: which examples a human should look at today, and why.

Candidates are the examples of the decision record that no reviewer has judged yet, each with the
automatic decision that a reviewer would confirm or overrule (`corpus.pipeline_decisions`). Each is one
of four kinds:

    borderline  a quality score within `borderline_width` of min_quality (kept or rejected), or a
                filter/dedup measurement within `borderline_relative` of its rule's threshold (an
                identical duplicate, similarity 1, is never borderline)
    rejected    dropped by a rule, clearly
    duplicate   dropped as a duplicate
    kept        kept, clearly (an audit sample)

and falls in one stratum: source x score band x stage x rule. The sample is a weighted round robin over
the strata: the n-th example of a stratum has round n / weight (borderline 2, rejected and duplicate 1,
kept 0.5), so every stratum is visited before any is visited twice and borderline strata twice as often.
Examples of new sources (fewer than `new_source_reviews` verdicts so far) come before all others; then
round, kind, and a seeded SHA-256 of the example decide. No random state: the same data and verdicts
give the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

from corpus_platform.curation.hashing import sha256_hex
from corpus_platform.schema import utcnow
from corpus_platform.warehouse import query, replace_rows

KINDS = ("borderline", "rejected", "duplicate", "kept")
KIND_WEIGHT = {"borderline": 2.0, "rejected": 1.0, "duplicate": 1.0, "kept": 0.5}
QUEUE_COLUMNS = ["queued_on", "example_id", "source", "date", "stage", "decision", "rule", "score", "threshold", "kind",
                 "score_band", "stratum", "priority", "reason", "queued_at"]


@dataclass(frozen=True)
class QueueSettings:
    daily_size: int = 50
    borderline_width: float = 1.0  # quality points either side of min_quality
    borderline_relative: float = 0.1  # other rules: within 10% of the threshold
    new_source_reviews: int = 20  # a source with fewer verdicts is new: its examples come first
    seed: str = "review-queue-v1"

    def __post_init__(self) -> None:
        if self.daily_size < 0 or self.borderline_width < 0 or self.borderline_relative < 0 or self.new_source_reviews < 0:
            raise ValueError("review queue settings must be non-negative")


def candidates(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The automatic decision of every example that exists and has no verdict yet."""
    return query(con, """
        SELECT p.example_id, p.source, p.date, p.stage, p.decision, p.rule, p.score, p.threshold
        FROM corpus.pipeline_decisions p
        SEMI JOIN corpus.raw_examples r USING (example_id, source, date)
        ANTI JOIN corpus.review_verdicts v USING (example_id, source, date)
    """)


def reviewed_per_source(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT source, count(*) FROM corpus.review_latest GROUP BY 1").fetchall())


def classify(df: pl.DataFrame, settings: QueueSettings) -> pl.DataFrame:
    """Adds kind, score_band and stratum."""
    has = pl.col("score").is_not_null() & pl.col("threshold").is_not_null()
    gap = (pl.col("score") - pl.col("threshold")).abs()
    quality = pl.col("stage") == "score"
    exact = (pl.col("decision") == "duplicate") & (pl.col("score") >= 1.0)  # an identical text is never borderline
    borderline = has & ~exact & pl.when(quality).then(gap <= settings.borderline_width).otherwise(
        gap <= settings.borderline_relative * pl.col("threshold").abs())
    kind = (pl.when(borderline).then(pl.lit("borderline"))
            .when(pl.col("decision") == "duplicate").then(pl.lit("duplicate"))
            .when(pl.col("decision") != "kept").then(pl.lit("rejected"))
            .otherwise(pl.lit("kept")))
    low = pl.col("score").floor().clip(1, 9).cast(pl.Int64)
    band = pl.when(quality & pl.col("score").is_not_null()).then(
        low.cast(pl.Utf8) + pl.lit("-") + (low + 1).cast(pl.Utf8)).otherwise(pl.lit("unscored"))
    return df.with_columns(kind.alias("kind"), band.alias("score_band")).with_columns(
        pl.concat_str([pl.col("source"), pl.col("score_band"), pl.col("stage"),
                       pl.coalesce("rule", "decision")], separator="|").alias("stratum"))


def _reason(kind: str, stage: str, decision: str, rule: str | None, score: float | None, threshold: float | None,
            new: bool, reviewed: int, nth: int, size: int, stratum: str) -> str:
    what = {"borderline": "borderline", "rejected": "dropped by a rule", "duplicate": "dropped as a duplicate",
            "kept": "audit of a kept example"}[kind]
    measured = f" {score:g} vs threshold {threshold:g}" if score is not None and threshold is not None else ""
    by = f" by {rule}" if rule else ""
    novelty = f"new source ({reviewed} reviewed)" if new else f"{reviewed} reviewed from this source"
    return f"{what}: {decision} at {stage}{by}{measured}; {novelty}; {nth} of {size} unreviewed in stratum {stratum}"


def select_queue(cands: pl.DataFrame, reviewed: dict[str, int], settings: QueueSettings, size: int) -> pl.DataFrame:
    """The `size` examples to review next, in order (`priority` 1 = first), with why each was picked."""
    if cands.height == 0 or size <= 0:
        return cands.head(0).with_columns(pl.lit(None, pl.Utf8).alias("kind"), pl.lit(None, pl.Utf8).alias("score_band"),
                                          pl.lit(None, pl.Utf8).alias("stratum"), pl.lit(None, pl.Int32).alias("priority"),
                                          pl.lit(None, pl.Utf8).alias("reason"))
    df = classify(cands, settings)
    keys = pl.concat_str([pl.lit(settings.seed), pl.col("example_id"), pl.col("source"), pl.col("date").cast(pl.Utf8)],
                         separator="\x1f")
    df = df.with_columns(sha256_hex(df.select(keys.alias("k"))["k"]).alias("_h"))
    counts = pl.DataFrame({"source": list(reviewed), "_reviewed": list(reviewed.values())},
                          schema={"source": pl.Utf8, "_reviewed": pl.Int64})
    df = (df.join(counts, on="source", how="left").with_columns(pl.col("_reviewed").fill_null(0))
          .sort("stratum", "_h")
          .with_columns(pl.int_range(pl.len()).over("stratum").alias("_nth"), pl.len().over("stratum").alias("_size"))
          .with_columns(
              (pl.col("_reviewed") >= settings.new_source_reviews).alias("_established"),
              (pl.col("_nth").cast(pl.Float64) / pl.col("kind").replace_strict(KIND_WEIGHT, return_dtype=pl.Float64)).alias("_round"),
              pl.col("kind").replace_strict({k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int32).alias("_kind"),
          )
          .sort("_established", "_round", "_kind", "_reviewed", "_h")
          .head(size)
          .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("priority")))
    reasons = [
        _reason(r["kind"], r["stage"], r["decision"], r["rule"], r["score"], r["threshold"], not r["_established"],
                r["_reviewed"], r["_nth"] + 1, r["_size"], r["stratum"])
        for r in df.iter_rows(named=True)
    ]
    return df.with_columns(pl.Series("reason", reasons, dtype=pl.Utf8)).drop(
        "_h", "_reviewed", "_nth", "_size", "_established", "_round", "_kind")


def build_queue(con: duckdb.DuckDBPyConnection, settings: QueueSettings, queued_on: date) -> pl.DataFrame:
    """Replace the pending queue by today's batch: up to `daily_size` less what was already reviewed from
    today's batch. Queue rows of reviewed examples stay (history). Returns the batch."""
    done_today, = con.execute("""
        SELECT count(*) FROM corpus.review_queue q SEMI JOIN corpus.review_verdicts v USING (example_id, source, date)
        WHERE q.queued_on = ?""", [queued_on]).fetchone()
    batch = select_queue(candidates(con), reviewed_per_source(con), settings, settings.daily_size - done_today)
    rows = batch.with_columns(pl.lit(queued_on, dtype=pl.Date).alias("queued_on"),
                              pl.lit(utcnow(), dtype=pl.Datetime("us")).alias("queued_at")).select(QUEUE_COLUMNS)
    pending = ("NOT EXISTS (SELECT 1 FROM corpus.review_verdicts v WHERE v.example_id = review_queue.example_id "
               "AND v.source = review_queue.source AND v.date = review_queue.date)")
    replace_rows(con, [("review_queue", rows, pending, [])])
    return batch


def pending_queue(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Queue rows without a verdict in the warehouse, in review order (newest batch first)."""
    return query(con, """
        SELECT q.* FROM corpus.review_queue q ANTI JOIN corpus.review_verdicts v USING (example_id, source, date)
        ORDER BY q.queued_on DESC, q.priority""")
