"""Splits and exports rebuilt from the warehouse: what `dataset_splits` and `training_exports`
materialize, and what the user-data deletion job reruns after erasing someone."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from corpus_platform.curation.decisions import KEPT, decision_rows
from corpus_platform.curation.exports import write_exports
from corpus_platform.curation.splits import SplitSettings, assign_splits
from corpus_platform.schema import utcnow
from corpus_platform.warehouse import query, replace_rows

SPLIT_COLUMNS = ["example_id", "source", "date", "split", "group_key", "quality_score", "content_hash"]


def rebuild_splits(con: duckdb.DuckDBPyConnection, settings: SplitSettings) -> pl.DataFrame:
    """Assign every scored example of every partition; replace the splits and their decision rows."""
    scored = query(con, "SELECT example_id, source, date, metadata, quality_score, content_hash FROM corpus.scored_examples")
    split = assign_splits(scored, settings)
    decisions = decision_rows(split, stage="split", decision=KEPT, rule=pl.col("split"), score=pl.col("quality_score"))
    replace_rows(con, [
        ("dataset_splits", split.select(SPLIT_COLUMNS), "TRUE", []),
        ("decisions", decisions, "stage = ?", ["split"]),
    ])
    return split


def export_splits(con: duckdb.DuckDBPyConnection, exports_root: Path) -> dict:
    """Write the training files of the current splits and record them in corpus.export_files."""
    df = query(con, """
        SELECT s.example_id, s.split, s.content_hash, e.messages
        FROM corpus.dataset_splits s JOIN corpus.scored_examples e USING (example_id, source, date)
    """)
    manifest = write_exports(df, exports_root)
    version = manifest["version"]
    files = pl.DataFrame(manifest["files"]).with_columns(
        pl.lit(version).alias("export_version"),
        (pl.lit(str(exports_root / version) + "/") + pl.col("path")).alias("path"),
        pl.lit(utcnow(), dtype=pl.Datetime("us")).alias("created_at"),
    )
    replace_rows(con, [("export_files", files, "export_version = ?", [version])])
    return manifest
