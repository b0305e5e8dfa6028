"""raw_examples: one source × day partition of canonical examples, plus its quarantine."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from corpus_platform.defs.curation import partition_checks
from corpus_platform.defs.ingest.resources import RedditResource, SyntheticResource, TwitterResource, YouTubeResource
from corpus_platform.defs.partitions import WAREHOUSE_POOL, corpus_partitions, partition_of
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.settings import FILE_SOURCES
from corpus_platform.sources.base import SourceNotConfigured
from corpus_platform.sources.quota import QuotaExhausted
from corpus_platform.sources.registry import NoInputFiles, read_source
from corpus_platform.warehouse import partition_where, replace_rows


def _reason_table(quarantine: pl.DataFrame) -> str:
    if quarantine.height == 0:
        return "nothing quarantined"
    counts = quarantine.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    lines = ["| reason | records |", "|---|---|"] + [f"| {r} | {n} |" for r, n in counts.iter_rows()]
    return "\n".join(lines)


@dg.asset(
    partitions_def=corpus_partitions,
    group_name="ingest",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "polars"},
    description="Canonical examples of one source and day; unreadable input goes to corpus.quarantine.",
    check_specs=partition_checks.specs("raw_examples"),
)
def raw_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, corpus_home: CorpusHome,
                 reddit: RedditResource, youtube: YouTubeResource, twitter: TwitterResource,
                 synthetic: SyntheticResource) -> dg.MaterializeResult:
    day, source = partition_of(context)
    layout = corpus_home.layout
    extra: dict = {}
    try:
        if source in FILE_SOURCES:
            batch = read_source(source, layout.landing_dir(source, day.isoformat()), day)
        else:
            live = {"reddit": reddit, "youtube": youtube, "twitter": twitter, "synthetic": synthetic}[source]
            batch, extra = live.fetch(day, layout, context.log)
    except (SourceNotConfigured, NoInputFiles, QuotaExhausted) as e:
        # QuotaExhausted: what was fetched is spooled; a run on a later day resumes from it.
        raise dg.Failure(description=str(e), allow_retries=False) from e
    where, params = partition_where(day, source)
    with warehouse(duckdb) as con:
        examples = batch.examples.with_columns(pl.lit(context.run_id).alias("ingest_run_id"))  # sql/003
        replace_rows(con, [("raw_examples", examples, where, params), ("quarantine", batch.quarantine, where, params)])
        check_results = partition_checks.evaluate("raw_examples", con, day, source, None)
    context.log.info(f"{source} {day}: {batch.examples.height} examples, {batch.quarantine.height} quarantined")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": batch.examples.height,
            "quarantined": batch.quarantine.height,
            "files": len(batch.files),
            "quarantine_reasons": dg.MetadataValue.md(_reason_table(batch.quarantine)),
            **extra,
        },
        check_results=check_results,
    )
