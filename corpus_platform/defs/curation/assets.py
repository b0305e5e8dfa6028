"""The curation stages. Each partitioned stage reads its upstream partition from the warehouse,
runs a plain-Python unit (corpus_platform.curation.*), and replaces its own partition and its
decision rows in one transaction."""

from typing import Callable

import dagster as dg
import duckdb as duckdb_lib
import polars as pl
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.datasets import export_splits, rebuild_splits
from corpus_platform.curation.dedup import dedup_exact, with_content_hash
from corpus_platform.curation.filter_stage import run_filter_stage, stats_metadata
from corpus_platform.curation.scoring import score_examples
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.ingest.assets import raw_examples
from corpus_platform.defs.partitions import WAREHOUSE_POOL, corpus_partitions, partition_of
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.schema import EXAMPLE_SCHEMA
from corpus_platform.warehouse import query, read_partition, replace_rows

Compute = Callable[[pl.DataFrame, duckdb_lib.DuckDBPyConnection], tuple[pl.DataFrame, pl.DataFrame]]


def _decision_summary(decisions: pl.DataFrame) -> str:
    counts = decisions.group_by("decision", "rule").len().sort("decision", "rule", nulls_last=True)
    rows = [f"| {d} | {r or '-'} | {n} |" for d, r, n in counts.iter_rows()]
    return "\n".join(["| decision | rule | examples |", "|---|---|---|", *rows])


def _run_stage(context, duckdb: DuckDBResource, *, upstream: str, table: str, stage: str, compute: Compute,
               extra_metadata: Callable[[pl.DataFrame], dict] | None = None) -> dg.MaterializeResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        incoming = read_partition(con, upstream, day, source)
        kept, decisions = compute(incoming, con)
        replace_rows(con, [
            (table, kept, "date = ? AND source = ?", [day, source]),
            ("decisions", decisions, "stage = ? AND date = ? AND source = ?", [stage, day, source]),
        ])
    dropped = incoming.height - kept.height
    context.log.info(f"{stage} {source} {day}: {incoming.height} in, {kept.height} kept, {dropped} dropped")
    metadata = {
        "dagster/row_count": kept.height,
        "input_rows": incoming.height,
        "dropped_rows": dropped,
        "decisions": dg.MetadataValue.md(_decision_summary(decisions)),
    }
    metadata.update(extra_metadata(kept) if extra_metadata else {})
    return dg.MaterializeResult(metadata=metadata)


_partitioned = dict(partitions_def=corpus_partitions, group_name="curation", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})


@dg.asset(deps=[raw_examples], description="Normalized examples, PII masked, that pass the filters of their source's profile.", **_partitioned)
def filtered_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    settings, (_, source), stats = curation.filter_stage(), partition_of(context), {}
    return _run_stage(context, duckdb, upstream="raw_examples", table="filtered_examples", stage="filter",
                      compute=lambda df, con: run_filter_stage(df.select(list(EXAMPLE_SCHEMA)), source, settings, stats),
                      extra_metadata=lambda kept: stats_metadata(stats))


@dg.asset(deps=[filtered_examples], description="Exact duplicates (SHA-256 of normalized text) removed, within the day and against every other kept partition.", **_partitioned)
def deduplicated_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    day, source = partition_of(context)

    def compute(df: pl.DataFrame, con) -> tuple[pl.DataFrame, pl.DataFrame]:
        hashed = with_content_hash(df)
        con.register("_mine", hashed.select("content_hash").unique().to_arrow())
        try:  # the index rows for this day's hashes only: work proportional to the day
            index = query(con, """
                SELECT d.content_hash, d.example_id FROM corpus.deduplicated_examples d
                JOIN _mine USING (content_hash) WHERE NOT (d.date = ? AND d.source = ?)
            """, [day, source])
        finally:
            con.unregister("_mine")
        return dedup_exact(hashed, index)

    return _run_stage(context, duckdb, upstream="filtered_examples", table="deduplicated_examples", stage="dedup", compute=compute)


@dg.asset(deps=[deduplicated_examples], description="Heuristic quality score 1-10 with its components; examples below min_quality are rejected.", **_partitioned)
def scored_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    settings = curation.scoring()

    return _run_stage(
        context, duckdb, upstream="deduplicated_examples", table="scored_examples", stage="score",
        compute=lambda df, con: score_examples(df, settings),
        extra_metadata=lambda kept: {"mean_quality": float(kept["quality_score"].mean() or 0.0)},
    )


@dg.asset(
    deps=[scored_examples], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"},
    description="Every scored example of every partition assigned to train/val/test by a hash of its thread/session group.",
)
def dataset_splits(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    with warehouse(duckdb) as con:
        split = rebuild_splits(con, curation.splits())
    counts = {s: int(split.filter(pl.col("split") == s).height) for s in ("train", "val", "test")}
    mix = split.group_by("source", "split").len().sort("source", "split")
    mix_md = "\n".join(["| source | split | examples |", "|---|---|---|", *[f"| {a} | {b} | {n} |" for a, b, n in mix.iter_rows()]])
    context.log.info(f"splits: {counts}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": split.height,
        **{f"{s}_rows": n for s, n in counts.items()},
        "groups": split["group_key"].n_unique(),
        "source_mix": dg.MetadataValue.md(mix_md),
    })


@dg.asset(
    deps=[dataset_splits], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "json"},
    description="OpenAI chat JSONL and Alpaca JSON per split under exports/<version>/, with a manifest of counts and hashes.",
)
def training_exports(context: dg.AssetExecutionContext, duckdb: DuckDBResource, corpus_home: CorpusHome) -> dg.MaterializeResult:
    exports_root = corpus_home.layout.exports
    with warehouse(duckdb) as con:
        manifest = export_splits(con, exports_root)
    version = manifest["version"]
    context.log.info(f"export {version}: {manifest['counts']}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(manifest["counts"].values()),
            "export_version": version,
            "path": dg.MetadataValue.path(str(exports_root / version)),
            **{f"{s}_rows": n for s, n in manifest["counts"].items()},
            "files": dg.MetadataValue.json(manifest["files"]),
        },
        data_version=dg.DataVersion(version),
    )
