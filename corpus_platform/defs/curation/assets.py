"""The curation stages. Each partitioned stage reads its upstream partition from the warehouse,
runs a plain-Python unit (corpus_platform.curation.*), and replaces its own partition and its
decision rows in one transaction."""

from typing import Any, Callable

import dagster as dg
import duckdb as duckdb_lib
import polars as pl
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.datasets import export_splits, rebuild_splits
from corpus_platform.curation.global_dedup import (cluster_writes, commit_partition, index_writes, prepare_partition,
                                                  resolve_clusters)
from corpus_platform.curation.filter_stage import run_filter_stage, stats_metadata
from corpus_platform.curation.scoring import score_examples
from corpus_platform.curation.decisions import KEPT, REJECTED, decision_rows, empty_decisions, stage_writes
from corpus_platform.curation.judge import judge_client, judge_frame
from corpus_platform.curation.report import build_report
from corpus_platform.defs.curation import partition_checks
from corpus_platform.defs.curation.resources import JUDGE_ENV, CurationSettings, LLMJudge
from corpus_platform.defs.ingest.assets import raw_examples
from corpus_platform.defs.partitions import WAREHOUSE_POOL, corpus_partitions, partition_of
from corpus_platform.defs.resources import CorpusHome, warehouse
from corpus_platform.schema import EXAMPLE_SCHEMA
from corpus_platform.warehouse import query, read_partition, replace_rows

# (kept rows, decision rows[, further (table, rows, where, params) replacements in the same transaction])
Prepare = Callable[[pl.DataFrame], Any]  # outside the warehouse lock
Commit = Callable[[Any, duckdb_lib.DuckDBPyConnection], tuple]  # (kept, decisions[, extra writes]) inside it


def _decision_summary(decisions: pl.DataFrame) -> str:
    counts = decisions.group_by("decision", "rule").len().sort("decision", "rule", nulls_last=True)
    rows = [f"| {d} | {r or '-'} | {n} |" for d, r, n in counts.iter_rows()]
    return "\n".join(["| decision | rule | examples |", "|---|---|---|", *rows])


def _run_stage(context, duckdb: DuckDBResource, *, upstream: str, table: str, stage: str, prepare: Prepare,
               curation: CurationSettings, commit: Commit | None = None,
               extra_metadata: Callable[[pl.DataFrame], dict] | None = None) -> dg.MaterializeResult:
    """Read the upstream partition (one warehouse session), `prepare` the result without the warehouse (other
    steps use the file meanwhile), then in a second session `commit` what must read the warehouse (dedup's
    index lookups), replace the partition and its decisions in one transaction, and evaluate the partition's
    checks (partition_checks.py) on what was written."""
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        incoming = read_partition(con, upstream, day, source)
    prepared = prepare(incoming)
    with warehouse(duckdb) as con:
        kept, decisions, *extra = commit(prepared, con) if commit else prepared
        replace_rows(con, [*stage_writes(table, stage, kept, decisions, day, source), *(extra[0] if extra else [])])
        check_results = partition_checks.evaluate(table, con, day, source, curation)
    dropped = incoming.height - kept.height
    context.log.info(f"{stage} {source} {day}: {incoming.height} in, {kept.height} kept, {dropped} dropped")
    metadata = {
        "dagster/row_count": kept.height,
        "input_rows": incoming.height,
        "dropped_rows": dropped,
        "decisions": dg.MetadataValue.md(_decision_summary(decisions)),
    }
    metadata.update(extra_metadata(kept) if extra_metadata else {})
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)


_partitioned = dict(partitions_def=corpus_partitions, group_name="curation", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"})


@dg.asset(deps=[raw_examples], description="Normalized examples, PII masked, that pass the filters of their source's profile.", check_specs=partition_checks.specs("filtered_examples"), **_partitioned)
def filtered_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    settings, (_, source), stats = curation.filter_stage(), partition_of(context), {}
    return _run_stage(context, duckdb, upstream="raw_examples", table="filtered_examples", stage="filter", curation=curation,
                      prepare=lambda df: run_filter_stage(df.select(list(EXAMPLE_SCHEMA)), source, settings, stats),
                      extra_metadata=lambda kept: stats_metadata(stats))


@dg.asset(deps=[filtered_examples], description="Exact duplicates removed within the day; the survivors' MinHash band keys indexed, and their exact and near-duplicate pairs with every other partition found through the index and verified (resolved globally by duplicate_clusters).", check_specs=partition_checks.specs("deduplicated_examples"), **_partitioned)
def deduplicated_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    day, source = partition_of(context)
    settings, stats = curation.dedup(), {}

    def commit(prepared, con) -> tuple:
        result = commit_partition(prepared, con)
        stats.update(result.stats)
        return result.kept, result.decisions, index_writes(result, day, source)

    return _run_stage(context, duckdb, upstream="filtered_examples", table="deduplicated_examples", stage="dedup", curation=curation,
                      prepare=lambda df: prepare_partition(df, day, source, settings), commit=commit,
                      extra_metadata=lambda kept: {f"dedup_{k}": v for k, v in stats.items()})


@dg.asset(deps=[deduplicated_examples], description="Heuristic quality score 1-10 with its components; examples below min_quality are rejected.", check_specs=partition_checks.specs("scored_examples"), **_partitioned)
def scored_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    settings = curation.scoring()

    return _run_stage(
        context, duckdb, upstream="deduplicated_examples", table="scored_examples", stage="score", curation=curation,
        prepare=lambda df: score_examples(df, settings),
        extra_metadata=lambda kept: {"mean_quality": float(kept["quality_score"].mean() or 0.0)},
    )


@dg.asset(
    deps=[scored_examples], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"},
    description="Duplicate clusters over every partition (exact and verified near-duplicate pairs among scored examples), "
                "each keeping one example: higher quality, then engagement, then earliest, then smallest id.",
)
def duplicate_clusters(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.MaterializeResult:
    with warehouse(duckdb) as con:
        clusters, decisions = resolve_clusters(con, curation.dedup())
        replace_rows(con, cluster_writes(clusters, decisions))
    removed = clusters.filter(pl.col("kind") != "kept")
    sizes = clusters.filter(pl.col("kind") == "kept").group_by("size").len().sort("size")
    context.log.info(f"duplicate clusters: {sizes.height and int(sizes['len'].sum())} clusters, {removed.height} examples removed")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": clusters.height,
        "clusters": int(clusters["cluster_id"].n_unique()) if clusters.height else 0,
        "removed_exact": int((removed["kind"] == "exact").sum()),
        "removed_near": int((removed["kind"] == "near").sum()),
        "cluster_sizes": dg.MetadataValue.md("\n".join(["| size | clusters |", "|---|---|",
                                                         *[f"| {a} | {b} |" for a, b in sizes.iter_rows()]])),
    })


@dg.asset(
    deps=[duplicate_clusters], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "openai"},
    description="LLM-judge scores (1-10 on named dimensions) of every example that survived dedup, cached by content "
                "hash so rematerializing never pays twice; examples below the threshold are rejected (rule llm_judge).",
)
def judged_examples(context: dg.AssetExecutionContext, duckdb: DuckDBResource, judge: LLMJudge) -> dg.MaterializeResult:
    if not judge.enabled:
        with warehouse(duckdb) as con:  # no stale verdicts from an earlier configuration
            replace_rows(con, [("decisions", empty_decisions(), "stage = ?", ["judge"])])
        note = f"disabled: set {JUDGE_ENV[0]} and {JUDGE_ENV[1]} (and {JUDGE_ENV[2]}) to judge examples"
        context.log.info(f"LLM judge {note}")
        return dg.MaterializeResult(metadata={"judge": note, "judged": 0, "called": 0, "cost_usd_this_run": 0.0})
    settings = judge.settings()
    with warehouse(duckdb) as con:
        df = query(con, """
            SELECT s.example_id, s.source, s.date, s.content_hash, s.messages FROM corpus.scored_examples s
            ANTI JOIN (SELECT * FROM corpus.duplicate_clusters WHERE kind <> 'kept') d USING (example_id, source, date)""")
        judged, stats = judge_frame(con, df, settings, judge_client(settings), log=context.log)
        ok = pl.col("judge_status") == "ok"
        low = ok & (pl.col("judged_score") < settings.threshold)
        decisions = pl.concat([
            decision_rows(judged.filter(ok & ~low), stage="judge", decision=KEPT, rule=pl.lit("llm_judge"),
                          score=pl.col("judged_score"), threshold=settings.threshold),
            decision_rows(judged.filter(low), stage="judge", decision=REJECTED, rule=pl.lit("llm_judge"),
                          score=pl.col("judged_score"), threshold=settings.threshold),
            decision_rows(judged.filter(~ok), stage="judge", decision=KEPT, rule=pl.lit("not_judged")),
        ])
        replace_rows(con, [("decisions", decisions, "stage = ?", ["judge"])])
    scores = judged.filter(ok)["judged_score"]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": judged.height,
        "judge_model": settings.model,
        "mean_judged_score": float(scores.mean()) if scores.len() else 0.0,
        "rejected_below_threshold": int(judged.filter(low).height),
        **{k: v for k, v in stats.items() if isinstance(v, (int, float))},
    })


@dg.asset(
    deps=[duplicate_clusters, judged_examples, dg.AssetKey("distilled_examples")], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "polars"},
    description="Every scored example that is not a cluster duplicate, decontaminated against the evaluation files and capped per author, assigned to train/val/test by a hash of its group (thread, session and related near-duplicates together).",
)
def dataset_splits(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings,
                   corpus_home: CorpusHome) -> dg.MaterializeResult:
    rules = curation.dataset_rules(corpus_home.layout.home)
    with warehouse(duckdb) as con:
        split = rebuild_splits(con, rules)
        dropped = query(con, """SELECT stage, rule, count(*) AS n FROM corpus.decisions
                                WHERE stage IN ('decontaminate', 'cap') GROUP BY ALL ORDER BY ALL""")
    counts = {s: int(split.filter(pl.col("split") == s).height) for s in ("train", "val", "test")}
    mix = split.group_by("source", "split").len().sort("source", "split")
    mix_md = "\n".join(["| source | split | examples |", "|---|---|---|", *[f"| {a} | {b} | {n} |" for a, b, n in mix.iter_rows()]])
    context.log.info(f"splits: {counts}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": split.height,
        **{f"{s}_rows": n for s, n in counts.items()},
        "groups": split["group_key"].n_unique(),
        "source_mix": dg.MetadataValue.md(mix_md),
        "decontamination_files": dg.MetadataValue.json([str(p) for p in rules.eval_files]),
        "dropped_before_split": dg.MetadataValue.json({f"{a}:{b}": n for a, b, n in dropped.iter_rows()}),
    })


@dg.asset(
    deps=[dataset_splits], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "json"},
    description="Training files per split under exports/<version>/: OpenAI chat JSONL (validated), Qwen3 chat-template text, "
                "Alpaca, ShareGPT, CSV and Parquet, with a manifest of counts, hashes and the validation summary.",
)
def training_exports(context: dg.AssetExecutionContext, duckdb: DuckDBResource, corpus_home: CorpusHome,
                     curation: CurationSettings) -> dg.MaterializeResult:
    exports_root = corpus_home.layout.exports
    with warehouse(duckdb) as con:
        manifest = export_splits(con, exports_root, tuple(curation.export_formats), curation.export_think_block)
    version = manifest["version"]
    context.log.info(f"export {version}: {manifest['counts']}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(manifest["counts"].values()),
            "export_version": version,
            "path": dg.MetadataValue.path(str(exports_root / version)),
            **{f"{s}_rows": n for s, n in manifest["counts"].items()},
            "files": dg.MetadataValue.json(manifest["files"]),
            "formats": ", ".join(manifest.get("formats", [])),
            "validation": dg.MetadataValue.json(manifest.get("validation", {})),
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(
    deps=[training_exports], group_name="datasets", pool=WAREHOUSE_POOL, kinds={"duckdb", "markdown"},
    description="The dataset card: totals, split x source mix, rejection reasons, duplicate clusters, and histograms "
                "of length and scores, shown here in the UI and written to reports/dataset_report/.",
)
def dataset_report(context: dg.AssetExecutionContext, duckdb: DuckDBResource, curation: CurationSettings,
                   judge: LLMJudge, corpus_home: CorpusHome) -> dg.MaterializeResult:
    with warehouse(duckdb) as con:
        splits = query(con, """
            SELECT s.example_id, s.source, s.split, s.quality_score, j.score AS judged_score,
                   list_sum([length(m.content) FOR m IN e.messages])::BIGINT AS chars
            FROM corpus.dataset_splits s JOIN corpus.scored_examples e USING (example_id, source, date)
            LEFT JOIN (SELECT * FROM corpus.decisions WHERE stage = 'judge') j USING (example_id, source, date)""")
        decisions = query(con, "SELECT * FROM corpus.decisions")
        clusters = query(con, "SELECT cluster_id, size FROM corpus.duplicate_clusters")
    report = build_report(splits, decisions, clusters, corpus_home.layout.home / "reports" / "dataset_report",
                          min_quality=curation.min_quality, judge_threshold=judge.threshold if judge.enabled else None)
    numbers = {k: v for k, v in report.summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return dg.MaterializeResult(metadata={
        "report": dg.MetadataValue.md(report.markdown),
        "path": dg.MetadataValue.path(str(report.card_path or corpus_home.layout.home / "reports" / "dataset_report")),
        **numbers,
    })
