"""An example's content as the pipeline last held it, for the review page and for bringing examples back.

The newest stage table that has the example wins (scored -> deduplicated -> filtered). An example that
only raw_examples holds (the filter stage rejected it) is normalized and PII-masked here exactly as the
filter stage would have done, so the reviewer reads, and a kept example is trained on, masked text only.
The content hash and the heuristic quality score are computed where the table had none.
"""

from __future__ import annotations

import duckdb
import polars as pl

from corpus_platform.curation.dedup import with_content_hash
from corpus_platform.curation.normalize import normalize_messages, social_steps
from corpus_platform.curation.pii import mask_pii
from corpus_platform.curation.scoring import ScoreSettings, score_examples
from corpus_platform.schema import EXAMPLE_SCHEMA, MESSAGE

KEY = ["example_id", "source", "date"]
STAGE_TABLES = ("scored_examples", "deduplicated_examples", "filtered_examples", "raw_examples")
CONTENT_SCHEMA: dict[str, pl.DataType] = {
    **EXAMPLE_SCHEMA,
    "content_hash": pl.Utf8,
    "quality_score": pl.Float64,
    "score_detail": pl.Utf8,
}


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'corpus' AND table_name = ? "
        "ORDER BY ordinal_position", [table]).fetchall()]


def keys_frame(keys: pl.DataFrame) -> pl.DataFrame:
    return keys.select(pl.col("example_id").cast(pl.Utf8), pl.col("source").cast(pl.Utf8),
                       pl.col("date").cast(pl.Date)).unique(maintain_order=True)


def with_keys(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame, sql: str, params: list | None = None) -> pl.DataFrame:
    """Run `sql`, which may join the registered `_review_keys` (example_id, source, date)."""
    con.register("_review_keys", keys_frame(keys).to_arrow())
    try:
        return con.execute(sql, params or []).pl()
    finally:
        con.unregister("_review_keys")


def last_assistant(messages: list[dict] | None) -> tuple[int | None, str | None]:
    """(index, text) of the last assistant turn."""
    for i in range(len(messages or []) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            return i, messages[i]["content"]
    return None, None


def replace_last_assistant(messages: pl.Series, texts: pl.Series) -> pl.Series:
    """Each conversation with its last assistant turn's content replaced by the text beside it (None: kept)."""
    out = []
    for msgs, text in zip(messages.to_list(), texts.to_list()):
        msgs = [dict(m) for m in (msgs or [])]
        i, _ = last_assistant(msgs)
        if text is not None and i is not None:
            msgs[i]["content"] = text
        out.append(msgs)
    return pl.Series(messages.name, out, dtype=pl.List(MESSAGE))


def mask_restored(df: pl.DataFrame) -> pl.DataFrame:
    """The filter stage's normalization (the source's steps) and PII masking, for raw-only examples."""
    parts = [normalize_messages(part, social_steps(source)) for (source,), part in df.group_by("source", maintain_order=True)]
    return mask_pii(pl.concat(parts)) if parts else df


def complete(df: pl.DataFrame) -> pl.DataFrame:
    """Fill a missing content hash and quality score (with its detail) from the messages."""
    if df.height == 0:
        return df
    df = df.with_row_index("_r")
    need_hash = df.filter(pl.col("content_hash").is_null())
    if need_hash.height:
        hashed = with_content_hash(need_hash.drop("content_hash")).select("_r", pl.col("content_hash").alias("_h"))
        df = df.join(hashed, on="_r", how="left").with_columns(pl.coalesce("content_hash", "_h").alias("content_hash")).drop("_h")
    need_score = df.filter(pl.col("quality_score").is_null())
    if need_score.height:
        scored, _ = score_examples(need_score.drop("quality_score", "score_detail"), ScoreSettings(min_quality=float("-inf")))
        scored = scored.select("_r", pl.col("quality_score").alias("_q"), pl.col("score_detail").alias("_d"))
        df = df.join(scored, on="_r", how="left").with_columns(
            pl.coalesce("quality_score", "_q").alias("quality_score"),
            pl.coalesce("score_detail", "_d").alias("score_detail"),
        ).drop("_q", "_d")
    return df.sort("_r").drop("_r")


def example_content(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame) -> pl.DataFrame:
    """CONTENT_SCHEMA columns plus `found_in` (the stage table it came from) and `pii_masked_here` (True when
    it came from raw_examples and was masked here), one row per key found anywhere."""
    keys = keys_frame(keys)
    frames = []
    for rank, table in enumerate(STAGE_TABLES):
        have = set(_table_columns(con, table))
        if not have:
            continue
        cols = ", ".join(f"t.{c}" if c in have else f"NULL::{_sql_type(c)} AS {c}" for c in CONTENT_SCHEMA)
        df = with_keys(con, keys, f"SELECT {cols}, {rank} AS _rank, '{table}' AS found_in FROM corpus.{table} t "
                                  "JOIN _review_keys k USING (example_id, source, date)")
        frames.append(df.with_columns(pl.col("metadata").cast(pl.Utf8), pl.col("score_detail").cast(pl.Utf8),
                                      pl.col("_rank").cast(pl.Int32)))
    if not frames:
        return pl.DataFrame(schema={**CONTENT_SCHEMA, "found_in": pl.Utf8, "pii_masked_here": pl.Boolean})
    found = (pl.concat(frames, how="vertical_relaxed").sort("_rank", maintain_order=True)
             .unique(subset=KEY, keep="first", maintain_order=True))
    raw = found.filter(pl.col("found_in") == "raw_examples")
    rest = found.filter(pl.col("found_in") != "raw_examples")
    if raw.height:
        raw = mask_restored(raw)
    out = pl.concat([rest, raw], how="vertical_relaxed").with_columns(
        (pl.col("found_in") == "raw_examples").alias("pii_masked_here"))
    out = complete(out.drop("_rank"))
    return keys.join(out, on=KEY, how="inner", maintain_order="left")


def _sql_type(column: str) -> str:
    return {"content_hash": "VARCHAR", "quality_score": "DOUBLE", "score_detail": "VARCHAR"}.get(column, "VARCHAR")


def untrainable(messages: list[dict] | None) -> str | None:
    """Why a conversation cannot go into the training files (the export's OpenAI chat format check, an
    empty turn, no user -> assistant exchange); None when it can."""
    from corpus_platform.curation.export_formats import check_openai_chat

    msgs = [{"role": m["role"], "content": m["content"]} for m in (messages or [])]
    issues, _ = check_openai_chat([{"messages": msgs}])
    errors = [i for i in issues if i["severity"] == "error"]
    if errors:
        return f"{errors[0]['error']}: {errors[0]['detail']}"
    if any(not (m["content"] or "").strip() for m in msgs):
        return "empty_turn: a turn has no text"
    seen_user = False
    for m in msgs:
        if m["role"] == "user":
            seen_user = True
        elif m["role"] == "assistant" and seen_user:
            return None
    return "no_exchange: no user turn followed by an assistant turn"
