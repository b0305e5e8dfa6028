"""The distilled_examples asset: one (date, source) partition of scored instructions answered by the
routed teachers, judged, and the best answer per instruction kept when it clears the threshold."""

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_duckdb import DuckDBResource

from corpus_platform.defs.curation.assets import scored_examples
from corpus_platform.defs.distillation.resources import DistillationSettings
from corpus_platform.defs.partitions import WAREHOUSE_POOL, corpus_partitions, partition_of
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.distillation.distill import DistillReport, distill_partition
from corpus_platform.warehouse import replace_rows

DISTILLED_SCHEMA_NOTE = "same columns as corpus.scored_examples, plus teacher and judged_score"


def batch_dir(home: Path, day: date, source: str) -> Path:
    """Where a partition's Batch API request files are written and its output files are dropped."""
    return Path(home) / "distillation" / "batches" / f"{day.isoformat()}_{source}"


def ledger_path(state: Path) -> Path:
    return Path(state) / "costs" / "distillation.jsonl"


def _teacher_table(report: DistillReport) -> str:
    rows = ["| teacher | asked | answered | errors | requests | prompt tokens | completion tokens | cost this run (USD) "
            "| cost all runs (USD) | wins | kept |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in sorted(report.teachers.items()):
        rows.append(f"| {name} | {s.asked} | {s.answered} | {s.errors} | {s.requests} | {s.prompt_tokens} | "
                    f"{s.completion_tokens} | {s.cost_usd:.6f} | {s.cost_usd_total:.6f} | {s.wins} | {s.kept} |")
    return "\n".join(rows)


def report_metadata(report: DistillReport, folder: Path) -> dict:
    meta = {
        "dagster/row_count": report.kept,
        "selected": True,
        "mode": report.mode,
        "instructions": report.instructions,
        "categories": dg.MetadataValue.json(report.categories),
        "pairs": report.pairs,
        "asked_this_run": report.asked,
        "reused_answers": report.reused,
        "answered_this_run": report.answered,
        "errors_this_run": report.errors,
        "error_reasons": dg.MetadataValue.json(report.error_reasons),
        "judged": report.judged,
        "judge_errors": report.judge_errors,
        "kept": report.kept,
        "below_threshold": report.below_threshold,
        "no_judged_answer": report.no_judged_answer,
        "owned_by_other_partitions": report.owned_elsewhere,
        "threshold": report.threshold,
        "teacher_cost_usd_this_run": report.cost_usd,
        "judge_cost_usd_this_run": report.judge_cost_usd,
        "teachers": dg.MetadataValue.md(_teacher_table(report)),
        "batch_folder": dg.MetadataValue.path(str(folder)),
    }
    if report.mode == "batch" or report.awaiting_batch:
        meta.update({
            "batch_requests_written": report.batch_requests_written,
            "batch_files_written": dg.MetadataValue.json(report.batch_files_written),
            "batch_results_ingested": dg.MetadataValue.json(report.batch_results_ingested),
            "batch_unreadable_lines": dg.MetadataValue.json(report.batch_unreadable_lines[:100]),
            "batch_unknown_custom_ids": report.batch_unknown_ids,
            "awaiting_batch_results": report.awaiting_batch,
        })
    return meta


@dg.asset(
    deps=[scored_examples], partitions_def=corpus_partitions, group_name="distillation", pool=WAREHOUSE_POOL,
    kinds={"duckdb", "openai"},
    description="Instructions (first user turns) of the partition's scored examples, for the sources the distillation "
                "resource selects, answered by teachers routed by category (each pair asked once, ever), judged, and "
                f"the best answer per instruction kept when it clears the threshold ({DISTILLED_SCHEMA_NOTE}). "
                "Batch mode writes OpenAI Batch API files instead of calling the teachers and ingests the results.",
)
def distilled_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, corpus_home: CorpusHome,
                       distillation: DistillationSettings) -> dg.MaterializeResult:
    day, source = partition_of(context)
    layout = corpus_home.layout
    if source not in distillation.sources:
        with warehouse(duckdb) as con:  # a source taken out of the selection leaves no stale rows behind
            replace_rows(con, [("distilled_examples", pl.DataFrame(), "date = ? AND source = ?", [day, source])])
        context.log.info(f"distillation: source '{source}' is not selected ({distillation.sources}); nothing to do")
        return dg.MaterializeResult(metadata={
            "dagster/row_count": 0, "selected": False,
            "note": f"source '{source}' is not selected for distillation (selected: {', '.join(distillation.sources) or 'none'})",
        })
    folder = batch_dir(layout.home, day, source)
    settings = distillation.settings(batch_dir=folder, ledger=ledger_path(layout.state))
    with warehouse(duckdb) as con:
        report = distill_partition(con, day, source, settings, log=context.log)
    if report.batch_files_written:
        context.log.info(f"{report.batch_requests_written} batch requests written to {', '.join(report.batch_files_written)}: "
                         f"submit them to the Batch API and drop the output file(s) into {folder}, then materialize again")
    return dg.MaterializeResult(metadata=report_metadata(report, folder))
