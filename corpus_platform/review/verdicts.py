"""Reviewers' verdicts into the warehouse, and over the automatic decisions.

`import_journal` brings the page's journal into `corpus.review_verdicts` (and drops review rows of
examples that are no longer in raw_examples, e.g. erased). `apply_verdicts` is called by
`rebuild_splits` on the examples about to be split and applies each example's latest verdict:

    reject  the example leaves the splits; decision `rejected`, rule `reviewer:<reason>`
    keep    an example the pipeline dropped comes back (from the newest stage table that has it; from
            raw_examples only after the filter stage's normalization and PII masking); decision `kept`,
            rule `reviewer:keep`. A kept exact duplicate of an example already in the splits stays out
            (decision `duplicate`): its text is there once already.
    edit    as keep, with the last assistant turn replaced by the reviewer's text (PII-masked like all
            text); content hash and quality score are recomputed, the original stays in
            `review_verdicts` and in the example's `metadata.review.original_response`

Every verdict yields one decision row with stage `review`. Examples the review changed (edited or brought
back) are written whole to `corpus.reviewed_examples`, where the export reads their messages.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from corpus_platform.curation.decisions import DUPLICATE, KEPT, REJECTED, decision_rows, empty_decisions
from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.pii import PII_TYPES, mask_texts, set_metadata_key
from corpus_platform.curation.scoring import ScoreSettings, score_examples
from corpus_platform.review.content import (CONTENT_SCHEMA, KEY, example_content, last_assistant, replace_last_assistant,
                                            untrainable, with_keys)
from corpus_platform.review.journal import journal_path, reason_rule, read_verdicts
from corpus_platform.schema import utcnow
from corpus_platform.warehouse import query, replace_rows

STAGE = "review"
VERDICT_SCHEMA: dict[str, pl.DataType] = {
    "verdict_id": pl.Utf8,
    "example_id": pl.Utf8,
    "source": pl.Utf8,
    "date": pl.Date,
    "verdict": pl.Utf8,
    "reason": pl.Utf8,
    "edited_response": pl.Utf8,
    "original_response": pl.Utf8,
    "reviewer": pl.Utf8,
    "reviewed_at": pl.Datetime("us"),
}
REVIEWED_COLUMNS = [*CONTENT_SCHEMA, "verdict_id", "restored_from"]
_KEY_SCHEMA: dict[str, pl.DataType] = {"example_id": pl.Utf8, "source": pl.Utf8, "date": pl.Date}
_DEFAULT = object()


def warehouse_journal(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The journal beside this connection's warehouse file (CORPUS_HOME/warehouse.duckdb ->
    CORPUS_HOME/state/review/verdicts.jsonl); None for an in-memory database."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0] or row[0] == ":memory:":
        return None
    return journal_path(Path(row[0]).resolve().parent)


def verdict_frame(records: list[dict]) -> pl.DataFrame:
    if not records:
        return pl.DataFrame(schema=VERDICT_SCHEMA)
    rows = [{k: r.get(k) for k in VERDICT_SCHEMA} for r in records]
    return pl.DataFrame(rows, schema={**VERDICT_SCHEMA, "date": pl.Utf8, "reviewed_at": pl.Utf8}).with_columns(
        pl.col("date").str.to_date(strict=False),
        pl.col("reviewed_at").str.to_datetime(time_unit="us", strict=False),
    ).drop_nulls(["date", "reviewed_at"])


def _exists(alias: str) -> str:
    """SQL: the row `alias` names an example that raw_examples still holds."""
    return (f"EXISTS (SELECT 1 FROM corpus.raw_examples r WHERE r.example_id = {alias}.example_id "
            f"AND r.source = {alias}.source AND r.date = {alias}.date)")


def import_journal(con: duckdb.DuckDBPyConnection, journal: Path | None | object = _DEFAULT) -> int:
    """Make `corpus.review_verdicts` the journal's verdicts on examples that still exist; drop queue rows
    of examples that no longer do. Without a journal (in-memory warehouse, or none written yet) the table
    keeps its rows, less those of vanished examples. Returns the number of verdict rows after the import."""
    path = warehouse_journal(con) if journal is _DEFAULT else journal
    writes = [("review_queue", pl.DataFrame(), f"NOT {_exists('review_queue')}", [])]
    if path is not None and Path(path).exists():
        incoming = verdict_frame(read_verdicts(Path(path))).unique("verdict_id", keep="last", maintain_order=True)
        known = query(con, "SELECT verdict_id, imported_at FROM corpus.review_verdicts")
        live = with_keys(con, incoming.select(KEY), f"SELECT k.* FROM _review_keys k WHERE {_exists('k')}")
        incoming = (incoming.join(live, on=KEY, how="semi")
                    .join(known, on="verdict_id", how="left")
                    .with_columns(pl.col("imported_at").fill_null(pl.lit(utcnow(), dtype=pl.Datetime("us")))))
        writes.append(("review_verdicts", incoming, "TRUE", []))
    else:
        writes.append(("review_verdicts", pl.DataFrame(), f"NOT {_exists('review_verdicts')}", []))
    replace_rows(con, writes)
    return con.execute("SELECT count(*) FROM corpus.review_verdicts").fetchone()[0]


def latest_verdicts(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return query(con, "SELECT * FROM corpus.review_latest ORDER BY example_id, source, date")


def _review_metadata(df: pl.DataFrame) -> pl.DataFrame:
    """metadata.review: the verdict, who gave it, when, where the example was brought back from, the original."""
    review = pl.struct(
        pl.col("verdict"), pl.col("verdict_id"), pl.col("reviewer"),
        pl.col("reviewed_at").dt.strftime("%Y-%m-%dT%H:%M:%S").alias("reviewed_at"),
        pl.col("restored_from"), pl.col("pii_masked_here").alias("pii_masked_at_review"),
        pl.when(pl.col("verdict") == "edit").then(pl.col("original_text")).alias("original_response"),
    ).struct.json_encode()
    return set_metadata_key(df, "review", review)


def _mask_edits(texts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """The edited texts PII-masked like the filter stage masks every turn; and whether anything was masked."""
    masked = mask_texts(pl.DataFrame({"content": texts.cast(pl.Utf8)}))
    found = pl.sum_horizontal([pl.col(f"pii_{t}") for t in PII_TYPES]) > 0
    return masked["content"], masked.select(found.alias("f"))["f"]


def _fit(df: pl.DataFrame, like: pl.DataFrame) -> pl.DataFrame:
    """`df` with exactly `like`'s columns and dtypes (a column `df` lacks is null)."""
    return df.select([
        (pl.col(c) if c in df.columns else pl.lit(None)).cast(dtype).alias(c) for c, dtype in like.schema.items()
    ])


def _content_hashes(con: duckdb.DuckDBPyConnection, examples: pl.DataFrame) -> pl.DataFrame:
    """(content_hash, example_id) of `examples`, from their own column or from corpus.scored_examples."""
    if "content_hash" in examples.columns:
        return examples.select("content_hash", "example_id")
    return with_keys(con, examples.select(KEY), "SELECT e.content_hash, e.example_id FROM corpus.scored_examples e "
                                                "JOIN _review_keys k USING (example_id, source, date)")


def apply_verdicts(con: duckdb.DuckDBPyConnection, candidates: pl.DataFrame,
                   journal: Path | None | object = _DEFAULT) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(examples after the latest verdicts, decision rows with stage 'review'); see the module docstring.

    `candidates` holds columns of corpus.scored_examples (at least example_id, source, date); the result
    has exactly its columns. Imports the journal first and rewrites `corpus.reviewed_examples`."""
    import_journal(con, journal)
    verdicts = latest_verdicts(con).select(*VERDICT_SCHEMA)
    if verdicts.height == 0:
        replace_rows(con, [("reviewed_examples", pl.DataFrame(), "TRUE", [])])
        return candidates, empty_decisions()
    present = candidates.select(KEY).unique().with_columns(pl.lit(True).alias("_present"))
    verdicts = verdicts.join(present, on=KEY, how="left").with_columns(pl.col("_present").fill_null(False))
    rejected_keys = verdicts.filter(pl.col("verdict") == "reject").select(KEY)
    out = candidates.join(rejected_keys, on=KEY, how="anti")

    # The text of every example the review changes: edited, or kept after the pipeline dropped it. One that
    # could not be trained on (broken structure, e.g. an empty turn) is neither brought back nor edited.
    touched = verdicts.filter((pl.col("verdict") == "edit") | ((pl.col("verdict") == "keep") & ~pl.col("_present")))
    changed = touched.join(example_content(con, touched.select(KEY)), on=KEY, how="inner") if touched.height else touched.head(0)
    flags = pl.DataFrame(schema={**_KEY_SCHEMA, "_dup_of": pl.Utf8, "_untrainable": pl.Utf8})
    reviewed = []
    if changed.height:
        changed = _edit(changed)
        changed = changed.with_columns(pl.Series("_untrainable", [untrainable(m) for m in changed["messages"].to_list()],
                                                 dtype=pl.Utf8))
        flags = pl.concat([flags, changed.filter(pl.col("_untrainable").is_not_null())
                           .select(*KEY, pl.lit(None, pl.Utf8).alias("_dup_of"), "_untrainable")])
        changed = changed.filter(pl.col("_untrainable").is_null())
        edits_in = changed.filter(pl.col("_present"))
        if edits_in.height:
            out = pl.concat([out.join(edits_in.select(KEY), on=KEY, how="anti"), _fit(edits_in, candidates)])
            reviewed.append(edits_in)
        back = changed.filter(~pl.col("_present")).sort("example_id")
        if back.height:  # an exact duplicate of an example in the splits (or of another one coming back) stays out
            owners = _content_hashes(con, out).unique("content_hash", keep="first").rename({"example_id": "_dup_of"})
            first = pl.col("example_id").first().over("content_hash")
            back = back.join(owners, on="content_hash", how="left").with_columns(
                pl.coalesce("_dup_of", pl.when(pl.col("example_id") != first).then(first)).alias("_dup_of"))
            flags = pl.concat([flags, back.filter(pl.col("_dup_of").is_not_null())
                               .select(*KEY, "_dup_of", pl.lit(None, pl.Utf8).alias("_untrainable"))])
            back = back.filter(pl.col("_dup_of").is_null())
            out = pl.concat([out, _fit(back, candidates)])
            reviewed.append(back)

    # One decision row per verdict: its score is the example's quality score where it has one.
    frames = [f for f in (changed, candidates) if "quality_score" in f.columns]
    scores = pl.concat([f.select(*KEY, pl.col("quality_score").cast(pl.Float64).alias("_score")) for f in frames]
                       or [pl.DataFrame(schema={**_KEY_SCHEMA, "_score": pl.Float64})],
                       how="vertical_relaxed").unique(KEY, keep="first", maintain_order=True)
    decided = verdicts.join(scores, on=KEY, how="left").join(flags, on=KEY, how="left")
    with_content = pl.concat([candidates.select(KEY), changed.select(KEY)])
    rejected = decided.filter(pl.col("verdict") == "reject")
    dups = decided.filter(pl.col("_dup_of").is_not_null())
    broken = decided.filter(pl.col("_untrainable").is_not_null())
    kept = (decided.filter((pl.col("verdict") != "reject") & pl.col("_dup_of").is_null() & pl.col("_untrainable").is_null())
            .join(with_content, on=KEY, how="semi"))
    rule = pl.lit("reviewer:") + pl.col("verdict")
    decisions = pl.concat([
        decision_rows(rejected, stage=STAGE, decision=REJECTED, score=pl.col("_score"),
                      rule=pl.col("reason").map_elements(reason_rule, return_dtype=pl.Utf8, skip_nulls=False)),
        decision_rows(kept, stage=STAGE, decision=KEPT, rule=rule, score=pl.col("_score")),
        decision_rows(dups, stage=STAGE, decision=DUPLICATE, rule=rule, score=pl.col("_score"), duplicate_of=pl.col("_dup_of")),
        # An edit that would break the example leaves it as it was; a dropped one stays dropped.
        decision_rows(broken, stage=STAGE, decision=pl.when(pl.col("_present")).then(pl.lit(KEPT)).otherwise(pl.lit(REJECTED)),
                      rule=rule + pl.lit("_not_trainable"), score=pl.col("_score")),
    ])
    rows = pl.concat(reviewed, how="diagonal_relaxed").select(REVIEWED_COLUMNS) if reviewed else pl.DataFrame()
    replace_rows(con, [("reviewed_examples", rows, "TRUE", [])])
    return out, decisions


def _edit(changed: pl.DataFrame) -> pl.DataFrame:
    """Apply edits (masked text as the last assistant turn, new hash and score) and set metadata.review."""
    changed = changed.with_columns(
        pl.when(pl.col("_present")).then(None).otherwise(pl.col("found_in")).alias("restored_from"),
        pl.Series("original_text", [last_assistant(m)[1] for m in changed["messages"].to_list()], dtype=pl.Utf8),
    )
    is_edit = changed["verdict"] == "edit"
    masked, had_pii = _mask_edits(changed["edited_response"].fill_null(""))
    new_text = pl.Series("_new_text", [t if e else None for t, e in zip(masked, is_edit)], dtype=pl.Utf8)
    changed = changed.with_columns(replace_last_assistant(changed["messages"], new_text),
                                   (is_edit & had_pii).alias("_masked_edit"))
    changed = changed.with_columns((pl.col("pii_masked_here") | pl.col("_masked_edit")).alias("pii_masked_here")).drop("_masked_edit")
    edits = changed.filter(pl.col("verdict") == "edit")
    if edits.height:  # a new text: a new content hash (so a new export version) and a new quality score
        redone, _ = score_examples(with_content_hash(edits.select("example_id", "source", "date", "messages", "metadata")),
                                   ScoreSettings(min_quality=float("-inf")))
        redone = redone.select(*KEY, pl.col("content_hash").alias("_h"), pl.col("quality_score").alias("_q"),
                               pl.col("score_detail").alias("_d"))
        changed = changed.join(redone, on=KEY, how="left").with_columns(
            pl.coalesce("_h", "content_hash").alias("content_hash"),
            pl.coalesce("_q", "quality_score").alias("quality_score"),
            pl.coalesce("_d", "score_detail").alias("score_detail"),
        ).drop("_h", "_q", "_d")
    return _review_metadata(changed)


def review_summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Counts for asset metadata: verdicts by kind, and the agreement table as rows."""
    by = dict(con.execute("SELECT verdict, count(*) FROM corpus.review_latest GROUP BY 1").fetchall())
    agreement = query(con, "SELECT * FROM corpus.review_agreement ORDER BY stage, rule")
    return {"verdicts": {k: int(by.get(k, 0)) for k in ("keep", "reject", "edit")},
            "agreement": json.loads(agreement.write_json()) if agreement.height else []}
