"""Asset checks that guard the curation stages. Blocking checks stop bad data from flowing on:
when one fails, the run does not materialize the assets downstream of it."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.exports import latest_export
from corpus_platform.curation.pii import PII_TYPES, scan_export
from corpus_platform.defs.curation.assets import (dataset_splits, deduplicated_examples, filtered_examples, judged_examples,
                                                  scored_examples, training_exports)
from corpus_platform.defs.curation.resources import CurationSettings, LLMJudge
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


@dg.asset_check(asset=deduplicated_examples, description="No two examples of the partition share a content hash (exact duplicates across partitions are resolved by duplicate_clusters).", **_partitioned)
def no_exact_duplicates_within_partition(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, within, indexed = _one(con, """
            SELECT count(*), count(*) - count(DISTINCT content_hash),
                   (SELECT count(DISTINCT example_id) FROM corpus.minhash_bands WHERE date = ? AND source = ?)
            FROM corpus.deduplicated_examples WHERE date = ? AND source = ?""", [day, source, day, source])
    return dg.AssetCheckResult(passed=within == 0, metadata={"rows": rows, "duplicates_within_partition": within,
                                                             "examples_in_band_index": indexed})


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
                description="No thread/session group, content hash or related near-duplicate pair spans two splits, "
                            "and no example flagged as contaminated by the evaluation files is in any split.")
def no_split_leakage(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with warehouse(duckdb) as con:
        groups, = _one(con, "SELECT count(*) FROM (SELECT group_key FROM corpus.dataset_splits GROUP BY 1 HAVING count(DISTINCT split) > 1)", [])
        hashes, = _one(con, "SELECT count(*) FROM (SELECT content_hash FROM corpus.dataset_splits GROUP BY 1 HAVING count(DISTINCT split) > 1)", [])
        pairs, = _one(con, """
            SELECT count(*) FROM corpus.near_duplicate_pairs p
            JOIN corpus.dataset_splits a ON a.example_id = p.id_a AND a.date = p.date_a AND a.source = p.source_a
            JOIN corpus.dataset_splits b ON b.example_id = p.id_b AND b.date = p.date_b AND b.source = p.source_b
            WHERE a.split <> b.split""", [])
        contaminated, = _one(con, """
            SELECT count(*) FROM corpus.dataset_splits s JOIN corpus.decisions d USING (example_id, source, date)
            WHERE d.stage = 'decontaminate' AND d.decision = 'rejected'""", [])
    return dg.AssetCheckResult(passed=groups == 0 and hashes == 0 and pairs == 0 and contaminated == 0,
                               metadata={"groups_in_two_splits": groups, "content_in_two_splits": hashes,
                                         "similar_pairs_across_splits": pairs, "contaminated_in_splits": contaminated})


@dg.asset_check(asset=dataset_splits, pool=WAREHOUSE_POOL, blocking=True,
                description="After global dedup, the share of split examples whose normalized text is held by another split example is below `max_duplicate_rate` (1 %).")
def duplicate_rate_below_threshold(duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    with warehouse(duckdb) as con:
        rows, distinct = _one(con, "SELECT count(*), count(DISTINCT content_hash) FROM corpus.dataset_splits", [])
    rate = (rows - distinct) / rows if rows else 0.0
    return dg.AssetCheckResult(passed=rate < curation.max_duplicate_rate,
                               metadata={"rows": rows, "duplicate_rows": rows - distinct, "rate": round(rate, 5),
                                         "threshold": curation.max_duplicate_rate})


@dg.asset_check(asset=dataset_splits, pool=WAREHOUSE_POOL, blocking=True,
                description="Near-duplicate residual: no verified pair at or above the dedup threshold has both ends in the "
                            "splits, and an independent in-memory dedup of a sample of the splits (not using the band index) finds none either.")
def near_duplicate_residual(duckdb: DuckDBResource, curation: CurationSettings) -> dg.AssetCheckResult:
    from corpus_platform.curation.global_dedup import dedup_text
    from corpus_platform.curation.near_dedup import find_duplicates

    settings = curation.dedup()
    with warehouse(duckdb) as con:
        indexed, = _one(con, """
            SELECT count(*) FROM corpus.near_duplicate_pairs p
            SEMI JOIN corpus.dataset_splits a ON a.example_id = p.id_a AND a.date = p.date_a AND a.source = p.source_a
            SEMI JOIN corpus.dataset_splits b ON b.example_id = p.id_b AND b.date = p.date_b AND b.source = p.source_b
            WHERE p.kind IN ('exact', 'near')""", [])
        sample = con.execute("""
            SELECT s.example_id || '@' || s.date AS id, e.messages FROM corpus.dataset_splits s
            JOIN corpus.scored_examples e USING (example_id, source, date)
            ORDER BY hash(s.example_id) LIMIT 20000""").pl()
    found = find_duplicates(sample["id"], dedup_text(sample), threshold=settings.threshold) if sample.height else None
    residual = len(found.removed) if found else 0
    return dg.AssetCheckResult(
        passed=indexed <= curation.max_near_dup_residual and residual <= curation.max_near_dup_residual,
        metadata={"indexed_pairs_in_splits": indexed, "sample_rows": sample.height, "sample_duplicates": residual,
                  "threshold": settings.threshold, "allowed": curation.max_near_dup_residual,
                  "sample_duplicate_ids": dg.MetadataValue.json(found.removed[:20] if found else [])},
    )


@dg.asset_check(asset=filtered_examples, partitions_def=corpus_partitions, pool=WAREHOUSE_POOL, blocking=False,
                description="The partition's filter rejection rate is within `drift_tolerance` of the source's trailing-week rate (warns only).")
def rejection_rate_within_trailing_week(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource,
                                        curation: CurationSettings) -> dg.AssetCheckResult:
    day, source = partition_of(context)
    with warehouse(duckdb) as con:
        rows, rejected, week_rows, week_rejected = _one(con, """
            SELECT count(*) FILTER (WHERE date = $day), count(*) FILTER (WHERE date = $day AND decision <> 'kept'),
                   count(*) FILTER (WHERE date < $day), count(*) FILTER (WHERE date < $day AND decision <> 'kept')
            FROM corpus.decisions WHERE stage = 'filter' AND source = $source
              AND date BETWEEN $day - INTERVAL 7 DAY AND $day""", {"day": day, "source": source})
    rate = rejected / rows if rows else 0.0
    if not week_rows:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"rate": round(rate, 4), "trailing_week_rows": 0},
                                   description="no trailing week for this source yet: nothing to compare")
    baseline = week_rejected / week_rows
    return dg.AssetCheckResult(
        passed=abs(rate - baseline) <= curation.drift_tolerance, severity=dg.AssetCheckSeverity.WARN,
        metadata={"rate": round(rate, 4), "trailing_week_rate": round(baseline, 4), "trailing_week_rows": week_rows,
                  "tolerance": curation.drift_tolerance},
    )


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


@dg.asset_check(asset=judged_examples, pool=WAREHOUSE_POOL, blocking=False,
                description="Mean LLM-judged quality of the judged examples is at least the judge's threshold (warns only; "
                            "a disabled judge passes with a note saying so).")
def mean_judged_quality_above_threshold(duckdb: DuckDBResource, judge: LLMJudge) -> dg.AssetCheckResult:
    if not judge.enabled:
        return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN, metadata={"judged": 0},
                                   description="the LLM judge is disabled: nothing judged")
    with warehouse(duckdb) as con:
        judged, mean = _one(con, "SELECT count(score), avg(score) FROM corpus.decisions WHERE stage = 'judge' AND rule = 'llm_judge'", [])
    mean = float(mean or 0.0)
    return dg.AssetCheckResult(passed=judged > 0 and mean >= judge.threshold, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"judged": judged, "mean_judged_score": round(mean, 3), "threshold": judge.threshold})
