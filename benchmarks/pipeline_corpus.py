"""Benchmark documents as canonical examples (corpus_platform/schema.py), spread over sources and days.

A document of benchmarks/work/corpus-M/corpus.jsonl ({"id", "text"}, real text with planted exact and
near duplicates, see build_corpus.py) becomes a two-turn conversation: the user turn is its first eight
whitespace-separated words, the assistant turn the rest. Dedup compares every turn's content, so the
planted Jaccard of a pair is (nearly) kept. Document k goes to source SOURCES[k % 6] and to day
`first_day + k * days // n`, so every (day, source) partition holds about n / (6 * days) examples and the
planted duplicates cross days and sources, as they would in production. Metadata: an author (20,000 of
them, so the default author cap of 200 never bites) and created_at; no thread ids.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from corpus_platform.schema import EXAMPLE_SCHEMA
from corpus_platform.settings import SOURCES

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"
FIRST_DAY = date(2026, 11, 1)
COLLECTED_AT = datetime(2026, 11, 1, 12, 0, 0)
AUTHORS = 20_000


def corpus_file(need: int) -> Path:
    """The smallest built corpus with at least `need` documents (build one with build_corpus.py)."""
    built = sorted((int(p.name.split("-")[1]), p / "corpus.jsonl") for p in WORK.glob("corpus-*")
                   if p.name.split("-")[1].isdigit() and (p / "corpus.jsonl").exists())
    for size, path in built:
        if size >= need:
            return path
    raise SystemExit(f"no corpus with {need:,} documents under {WORK}: run "
                     f"`python benchmarks/build_corpus.py --n {need} --out {WORK}/corpus-{need}`")


def read_docs(path: Path, start: int, count: int) -> pl.DataFrame:
    """Documents [start, start + count) of a corpus file, with their position `k`. Only those lines are
    parsed (a sliced scan_ndjson held ~1 GB for a slice near the end of the 1M file: the loader's memory,
    not the pipeline's, but the process tree's peak counted it)."""
    with open(path, "rb") as f:
        lines = b"".join(itertools.islice(f, start, start + count))
    docs = pl.read_ndjson(io.BytesIO(lines), schema={"id": pl.Utf8, "text": pl.Utf8}) if lines \
        else pl.DataFrame(schema={"id": pl.Utf8, "text": pl.Utf8})
    if docs.height < count:
        raise SystemExit(f"{path} has fewer than {start + count:,} documents")
    return docs.with_row_index("k", offset=start)


def to_examples(docs: pl.DataFrame, *, n: int, days: int, first_day: date = FIRST_DAY,
                day_override: date | None = None) -> pl.DataFrame:
    """Canonical example rows (EXAMPLE_SCHEMA plus ingest_run_id) for `docs` from read_docs."""
    split = pl.col("text").str.extract_groups(r"(?s)^\s*((?:\S+\s+){7}\S+)\s+(.*)$")
    k = pl.col("k").cast(pl.Int64)
    if day_override is None:
        day = pl.lit(first_day) + pl.duration(days=k * days // n)
    else:
        day = pl.lit(day_override)
    out = docs.with_columns(
        split.struct.field("1").fill_null(pl.lit("Tell me about this.")).alias("_user"),
        split.struct.field("2").fill_null(pl.col("text")).alias("_assistant"),
    )
    source = pl.Series(list(SOURCES)).gather((docs["k"].cast(pl.Int64) % len(SOURCES)).to_numpy())
    ids = [hashlib.sha256(f"{s}\x1f{i}".encode()).hexdigest()[:20] for s, i in zip(source.to_list(), docs["id"].to_list())]
    created = (pl.lit(COLLECTED_AT) + pl.duration(days=(day - pl.lit(first_day)).dt.total_days())).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = out.with_columns(
        pl.Series("example_id", ids),
        source.alias("source"),
        day.cast(pl.Date).alias("date"),
        pl.col("id").alias("source_id"),
        pl.concat_list(
            pl.struct(pl.lit("user").alias("role"), pl.col("_user").alias("content")),
            pl.struct(pl.lit("assistant").alias("role"), pl.col("_assistant").alias("content")),
        ).alias("messages"),
        pl.format('{{"author": "u{}", "created_at": "{}"}}', k % AUTHORS, created).alias("metadata"),
        pl.lit(COLLECTED_AT).cast(pl.Datetime("us")).alias("collected_at"),
        pl.lit("bench").alias("ingest_run_id"),
    )
    return out.select([pl.col(c).cast(t) for c, t in EXAMPLE_SCHEMA.items()] + ["ingest_run_id"])


def partitions(examples: pl.DataFrame) -> list[tuple[date, str]]:
    """(day, source) pairs in the order a backfill would run them: by day, then source."""
    keys = examples.select("date", "source").unique().sort("date", "source")
    return list(keys.iter_rows())


def day_after(examples: pl.DataFrame) -> date:
    return examples["date"].max() + timedelta(days=1)
