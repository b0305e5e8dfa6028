"""Asset checks that guard the curation stages. Blocking checks stop bad data from flowing on:
when one fails, the run does not materialize the assets downstream of it."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.exports import latest_export
from corpus_platform.curation.pii import PII_TYPES, scan_export
from corpus_platform.defs.curation.assets import (dataset_splits, deduplicated_examples, filtered_examples, scored_examples,
                                                  training_exports)
from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.ingest.assets import raw_examples
from corpus_platform.defs.partitions import WAREHOUSE_POOL, corpus_partitions, partition_of
from corpus_platform.defs.resources import CorpusHome, warehouse

_partitioned = dict(partitions_def=corpus_partitions, pool=WAREHOUSE_POOL, blocking=True)


def _one(con, sql: str, params: list) -> tuple:
    return con.execute(sql, params).fetchone()


@dg.asset_check(asset=raw_examples, description="Every example has an id, source, date, source id, messages and a collection time.", **_partitioned)
def required_fields_present(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, bad = _one(con, """
            SELECT count(*), count(*) FILTER (WHERE example_id IS NULL OR example_id = '' OR source_id IS NULL
                OR source_id = '' OR messages IS NULL OR len(messages) = 0 OR collected_at IS NULL
                OR list_count(list_filter(messages, m -> m.role IS NULL OR m.content IS NULL)) > 0)
            FROM corpus.raw_examples WHERE date = ? AND source = ?""", [day, source])
    return dg.AssetCheckResult(passed=bad == 0, metadata={"rows": rows, "rows_missing_fields": bad})


@dg.asset_check(asset=deduplicated_examples, description="No two kept examples share a content hash, in this partition or across partitions.", **_partitioned)
def no_exact_duplicates_after_dedup(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        within, = _one(con, """
            SELECT count(*) - count(DISTINCT content_hash) FROM corpus.deduplicated_examples
            WHERE date = ? AND source = ?""", [day, source])
        across, = _one(con, """
            SELECT count(DISTINCT a.content_hash) FROM corpus.deduplicated_examples a
            JOIN corpus.deduplicated_examples b ON a.content_hash = b.content_hash
            WHERE a.date = ? AND a.source = ? AND NOT (b.date = a.date AND b.source = a.source)""", [day, source])
    return dg.AssetCheckResult(passed=within == 0 and across == 0,
                               metadata={"duplicates_within_partition": within, "duplicates_across_partitions": across})


@dg.asset_check(asset=scored_examples, description="Mean heuristic quality of the partition is at least `min_mean_quality`.", **_partitioned)
def mean_quality_above_threshold(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, mean = _one(con, "SELECT count(*), avg(quality_score) FROM corpus.scored_examples WHERE date = ? AND source = ?", [day, source])
    mean = float(mean) if mean is not None else 0.0
    return dg.AssetCheckResult(
        passed=rows > 0 and mean >= curation.min_mean_quality,
        metadata={"rows": rows, "mean_quality": round(mean, 3), "threshold": curation.min_mean_quality},
        description=None if rows else "no scored examples in this partition",
    )


@dg.asset_check(asset=scored_examples, description="Every raw example of the partition has exactly one decision at each stage it reached.", **_partitioned)
def every_example_accounted_for(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    stages = [("raw_examples", "filter"), ("filtered_examples", "dedup"), ("deduplicated_examples", "score")]
    metadata, passed = {}, True
    with warehouse(duckdb) as con:
        for table, stage in stages:
            missing, doubled = _one(con, f"""
                WITH d AS (SELECT example_id, count(*) AS n FROM corpus.decisions
                           WHERE stage = ? AND date = ? AND source = ? GROUP BY example_id)
                SELECT count(*) FILTER (WHERE d.example_id IS NULL), count(*) FILTER (WHERE d.n > 1)
                FROM corpus.{table} t LEFT JOIN d USING (example_id) WHERE t.date = ? AND t.source = ?""",
                [stage, day, source, day, source])
            metadata[f"{stage}_undecided"] = missing
            metadata[f"{stage}_decided_twice"] = doubled
            passed = passed and missing == 0 and doubled == 0
    return dg.AssetCheckResult(passed=passed, metadata=metadata)


@dg.asset_check(asset=dataset_splits, pool=WAREHOUSE_POOL, blocking=True,
                description="No thread/session group and no content hash appears in two splits (no leakage).")
def no_split_leakage(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse(duckdb) as con:
        groups, = _one(con, "SELECT count(*) FROM (SELECT group_key FROM corpus.dataset_splits GROUP BY 1 HAVING count(DISTINCT split) > 1)", [])
        hashes, = _one(con, "SELECT count(*) FROM (SELECT content_hash FROM corpus.dataset_splits GROUP BY 1 HAVING count(DISTINCT split) > 1)", [])
    return dg.AssetCheckResult(passed=groups == 0 and hashes == 0,
                               metadata={"groups_in_two_splits": groups, "content_in_two_splits": hashes})


@dg.asset_check(asset=dataset_splits, pool=WAREHOUSE_POOL, blocking=True,
                description="Each split has at least its configured minimum rows before anything trains on it.")
def minimum_rows_per_split(duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    with warehouse(duckdb) as con:
        counts = dict(con.execute("SELECT split, count(*) FROM corpus.dataset_splits GROUP BY 1").fetchall())
    need = curation.min_rows()
    short = {s: counts.get(s, 0) for s, n in need.items() if counts.get(s, 0) < n}
    return dg.AssetCheckResult(
        passed=not short,
        metadata={**{f"{s}_rows": counts.get(s, 0) for s in need}, **{f"{s}_minimum": n for s, n in need.items()}},
        description=f"splits below minimum: {short}" if short else None,
    )


@dg.asset_check(asset=filtered_examples, partitions_def=corpus_partitions, pool=WAREHOUSE_POOL, blocking=False,
                description="Share of the partition's examples rejected by the `toxicity` rule is at most `max_toxicity_share` (warns only).")
def toxicity_share_below_threshold(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, toxic = _one(con, """
            SELECT count(*), count(*) FILTER (WHERE rule = 'toxicity') FROM corpus.decisions
            WHERE stage = 'filter' AND date = ? AND source = ?""", [day, source])
    share = toxic / rows if rows else 0.0
    return dg.AssetCheckResult(
        passed=share <= curation.max_toxicity_share, severity=dg.AssetCheckSeverity.WARN,
        metadata={"examples": rows, "rejected_by_toxicity": toxic, "share": round(share, 4),
                  "threshold": curation.max_toxicity_share,
                  "backend": curation.filters().toxicity_backend},
    )


@dg.asset_check(asset=filtered_examples, description="Share of kept examples whose detected language (metadata.curation.lang) is allowed is at least `min_language_share`.", **_partitioned)
def language_share(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, allowed = _one(con, """
            SELECT count(*), count(*) FILTER (WHERE list_contains(?, json_extract_string(metadata, '$.curation.lang')))
            FROM corpus.filtered_examples WHERE date = ? AND source = ?""", [list(curation.allowed_languages), day, source])
    share = allowed / rows if rows else 1.0
    return dg.AssetCheckResult(
        passed=share >= curation.min_language_share,
        metadata={"kept": rows, "in_allowed_languages": allowed, "share": round(share, 4),
                  "threshold": curation.min_language_share, "allowed": ", ".join(curation.allowed_languages)},
    )


@dg.asset_check(asset=training_exports, blocking=True,
                description="The latest export's files hold no e-mail, URL, IP, card, phone number or handle (the masking regexes find nothing).")
def no_pii_in_exports(corpus_home: CorpusHome) -> dg.AssetCheckResult:
    try:
        export = latest_export(corpus_home.layout.exports)
    except FileNotFoundError as e:
        return dg.AssetCheckResult(passed=False, description=str(e))
    found = scan_export(export)
    totals = {t: sum(counts[t] for counts in found.values()) for t in PII_TYPES}
    dirty = {path: {t: n for t, n in counts.items() if n} for path, counts in found.items() if any(counts.values())}
    return dg.AssetCheckResult(
        passed=not dirty,
        metadata={"export": str(export), "files_scanned": len(found), **{f"{t}_matches": n for t, n in totals.items()},
                  "files_with_pii": dg.MetadataValue.json(dirty)},
        description=f"PII found in {len(dirty)} export file(s)" if dirty else None,
    )
