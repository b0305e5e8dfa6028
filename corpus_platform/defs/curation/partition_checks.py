"""The checks of one source × day partition, evaluated in the step that wrote it, on its connection.

They used to be seven separate `@asset_check` steps per partition: seven more processes, each opening
the warehouse again, which made a 14-day backfill (84 partitions) spend most of its time starting
steps. As check specs of their asset they keep their names, keys, descriptions and blocking, and show
on the same check pages; a failing blocking check fails the step once the materialization is
recorded, so nothing downstream runs, as before. Re-running a check means re-materializing its
partition (the checks read what that step wrote).
"""

from __future__ import annotations

from datetime import date
from typing import Callable

import dagster as dg
import duckdb

from corpus_platform.defs.curation.resources import CurationSettings
from corpus_platform.defs.partitions import corpus_partitions

Check = Callable[[duckdb.DuckDBPyConnection, date, str, CurationSettings], dg.AssetCheckResult]


def _spec(asset: str, name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking,
                             partitions_def=corpus_partitions)


def one(con, sql: str, params) -> tuple:
    """The single row of a check's query."""
    return con.execute(sql, params).fetchone()


def required_fields_present(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, bad = one(con, """
        SELECT count(*), count(*) FILTER (WHERE example_id IS NULL OR example_id = '' OR source_id IS NULL
            OR source_id = '' OR messages IS NULL OR len(messages) = 0 OR collected_at IS NULL
            OR list_count(list_filter(messages, m -> m.role IS NULL OR m.content IS NULL)) > 0)
        FROM corpus.raw_examples WHERE date = ? AND source = ?""", [day, source])
    return dg.AssetCheckResult(check_name="required_fields_present", passed=bad == 0,
                               metadata={"rows": rows, "rows_missing_fields": bad})


def rejection_rate_within_trailing_week(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, rejected, week_rows, week_rejected = one(con, """
        SELECT count(*) FILTER (WHERE date = $day), count(*) FILTER (WHERE date = $day AND decision <> 'kept'),
               count(*) FILTER (WHERE date < $day), count(*) FILTER (WHERE date < $day AND decision <> 'kept')
        FROM corpus.decisions WHERE stage = 'filter' AND source = $source
          AND date BETWEEN $day - INTERVAL 7 DAY AND $day""", {"day": day, "source": source})
    rate = rejected / rows if rows else 0.0
    name, warn = "rejection_rate_within_trailing_week", dg.AssetCheckSeverity.WARN
    if not week_rows:
        return dg.AssetCheckResult(check_name=name, passed=True, severity=warn,
                                   metadata={"rate": round(rate, 4), "trailing_week_rows": 0},
                                   description="no trailing week for this source yet: nothing to compare")
    baseline = week_rejected / week_rows
    return dg.AssetCheckResult(
        check_name=name, passed=abs(rate - baseline) <= curation.drift_tolerance, severity=warn,
        metadata={"rate": round(rate, 4), "trailing_week_rate": round(baseline, 4), "trailing_week_rows": week_rows,
                  "tolerance": curation.drift_tolerance},
    )


def toxicity_share_below_threshold(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, toxic = one(con, """
        SELECT count(*), count(*) FILTER (WHERE rule = 'toxicity') FROM corpus.decisions
        WHERE stage = 'filter' AND date = ? AND source = ?""", [day, source])
    share = toxic / rows if rows else 0.0
    return dg.AssetCheckResult(
        check_name="toxicity_share_below_threshold", passed=share <= curation.max_toxicity_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"examples": rows, "rejected_by_toxicity": toxic, "share": round(share, 4),
                  "threshold": curation.max_toxicity_share, "backend": curation.filters().toxicity_backend},
    )


def language_share(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, allowed = one(con, """
        SELECT count(*), count(*) FILTER (WHERE list_contains(?, json_extract_string(metadata, '$.curation.lang')))
        FROM corpus.filtered_examples WHERE date = ? AND source = ?""", [list(curation.allowed_languages), day, source])
    share = allowed / rows if rows else 1.0
    return dg.AssetCheckResult(
        check_name="language_share", passed=share >= curation.min_language_share,
        metadata={"kept": rows, "in_allowed_languages": allowed, "share": round(share, 4),
                  "threshold": curation.min_language_share, "allowed": ", ".join(curation.allowed_languages)},
    )


def no_exact_duplicates_within_partition(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, within, indexed = one(con, """
        SELECT count(*), count(*) - count(DISTINCT content_hash),
               (SELECT count(DISTINCT example_id) FROM corpus.minhash_bands WHERE date = ? AND source = ?)
        FROM corpus.deduplicated_examples WHERE date = ? AND source = ?""", [day, source, day, source])
    return dg.AssetCheckResult(check_name="no_exact_duplicates_within_partition", passed=within == 0,
                               metadata={"rows": rows, "duplicates_within_partition": within,
                                         "examples_in_band_index": indexed})


def mean_quality_above_threshold(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    rows, mean = one(con, "SELECT count(*), avg(quality_score) FROM corpus.scored_examples WHERE date = ? AND source = ?",
                      [day, source])
    mean = float(mean) if mean is not None else 0.0
    return dg.AssetCheckResult(
        check_name="mean_quality_above_threshold", passed=rows > 0 and mean >= curation.min_mean_quality,
        metadata={"rows": rows, "mean_quality": round(mean, 3), "threshold": curation.min_mean_quality},
        description=None if rows else "no scored examples in this partition",
    )


def every_example_accounted_for(con, day: date, source: str, curation: CurationSettings) -> dg.AssetCheckResult:
    stages = [("raw_examples", "filter"), ("filtered_examples", "dedup"), ("deduplicated_examples", "score")]
    metadata, passed = {}, True
    for table, stage in stages:
        missing, doubled = one(con, f"""
            WITH d AS (SELECT example_id, count(*) AS n FROM corpus.decisions
                       WHERE stage = ? AND date = ? AND source = ? GROUP BY example_id)
            SELECT count(*) FILTER (WHERE d.example_id IS NULL), count(*) FILTER (WHERE d.n > 1)
            FROM corpus.{table} t LEFT JOIN d USING (example_id) WHERE t.date = ? AND t.source = ?""",
            [stage, day, source, day, source])
        metadata[f"{stage}_undecided"] = missing
        metadata[f"{stage}_decided_twice"] = doubled
        passed = passed and missing == 0 and doubled == 0
    return dg.AssetCheckResult(check_name="every_example_accounted_for", passed=passed, metadata=metadata)


# asset -> [(spec, check)], in the order they run after the asset's write
PARTITION_CHECKS: dict[str, list[tuple[dg.AssetCheckSpec, Check]]] = {
    "raw_examples": [
        (_spec("raw_examples", "required_fields_present",
               "Every example has an id, source, date, source id, messages and a collection time."), required_fields_present),
    ],
    "filtered_examples": [
        (_spec("filtered_examples", "rejection_rate_within_trailing_week",
               "The partition's filter rejection rate is within `drift_tolerance` of the source's trailing-week rate "
               "(warns only).", blocking=False), rejection_rate_within_trailing_week),
        (_spec("filtered_examples", "toxicity_share_below_threshold",
               "Share of the partition's examples rejected by the `toxicity` rule is at most `max_toxicity_share` "
               "(warns only).", blocking=False), toxicity_share_below_threshold),
        (_spec("filtered_examples", "language_share",
               "Share of kept examples whose detected language (metadata.curation.lang) is allowed is at least "
               "`min_language_share`."), language_share),
    ],
    "deduplicated_examples": [
        (_spec("deduplicated_examples", "no_exact_duplicates_within_partition",
               "No two examples of the partition share a content hash (exact duplicates across partitions are "
               "resolved by duplicate_clusters)."), no_exact_duplicates_within_partition),
    ],
    "scored_examples": [
        (_spec("scored_examples", "mean_quality_above_threshold",
               "Mean heuristic quality of the partition is at least `min_mean_quality`."), mean_quality_above_threshold),
        (_spec("scored_examples", "every_example_accounted_for",
               "Every raw example of the partition has exactly one decision at each stage it reached."),
         every_example_accounted_for),
    ],
}


def specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [spec for spec, _ in PARTITION_CHECKS[asset]]


def check_keys(*assets: str) -> list[dg.AssetCheckKey]:
    return [spec.key for asset in assets for spec in specs(asset)]


def evaluate(asset: str, con, day: date, source: str, curation: CurationSettings) -> list[dg.AssetCheckResult]:
    """Every check of `asset` on the partition just written (same connection, same warehouse session)."""
    return [check(con, day, source, curation) for _, check in PARTITION_CHECKS[asset]]
