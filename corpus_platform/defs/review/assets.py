"""The daily review queue, sampled from the decision record for the review page."""

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from corpus_platform.defs.curation.assets import scored_examples
from corpus_platform.defs.partitions import WAREHOUSE_POOL
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.defs.review.resources import ReviewSettings
from corpus_platform.review.journal import journal_path
from corpus_platform.review.queue import build_queue
from corpus_platform.review.verdicts import import_journal, review_summary
from corpus_platform.schema import utcnow


def _md(df: pl.DataFrame) -> str:
    if df.height == 0:
        return "(none)"
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * df.width
    return "\n".join([head, *("| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in df.iter_rows())])


@dg.asset(
    deps=[scored_examples], group_name="review", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"},
    description="Today's batch of examples for human review, stratified by source x score band x rule: borderline "
                "scores and new sources first, never an example that already has a verdict (imports the page's verdicts first).",
)
def review_queue(context: dg.AssetExecutionContext, duckdb: DuckDBResource, corpus_home: CorpusHome,
                 review: ReviewSettings) -> dg.MaterializeResult:
    today = utcnow().date()
    with warehouse(duckdb) as con:
        verdicts = import_journal(con, journal_path(corpus_home.layout.home))
        batch = build_queue(con, review.queue(), today)
        pending, = con.execute("SELECT count(*) FROM corpus.review_queue q ANTI JOIN corpus.review_verdicts v "
                               "USING (example_id, source, date)").fetchone()
        summary = review_summary(con)
    kinds = batch.group_by("kind").len().sort("kind") if batch.height else pl.DataFrame()
    context.log.info(f"review queue {today}: {batch.height} queued, {pending} pending, {verdicts} verdicts imported")
    agreement = pl.DataFrame(summary["agreement"]) if summary["agreement"] else pl.DataFrame()
    return dg.MaterializeResult(metadata={
        "dagster/row_count": batch.height,
        "queued_on": str(today),
        "pending": pending,
        "verdicts": verdicts,
        "by_kind": dg.MetadataValue.md(_md(kinds)),
        "by_source": dg.MetadataValue.md(_md(batch.group_by("source").len().sort("source") if batch.height else pl.DataFrame())),
        "agreement": dg.MetadataValue.md(_md(agreement.select("stage", "rule", "reviewed", "agreed", "agreement_rate")
                                             if agreement.height else agreement)),
        "review_page": "make review (http://127.0.0.1:8765/review)",
    })


build_review_queue_job = dg.define_asset_job(
    "build_review_queue", selection=dg.AssetSelection.assets(review_queue),
    description="Import the review page's verdicts and build today's review queue.",
)
