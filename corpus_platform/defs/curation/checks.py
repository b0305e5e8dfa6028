"""Asset checks that guard the curation stages. Blocking checks stop bad data from flowing on:
when one fails, the run does not materialize the assets downstream of it. The checks of each source ×
day partition are check specs of their asset, evaluated in its step (partition_checks.py); these are
the checks of the unpartitioned datasets and exports."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from corpus_platform.curation.exports import latest_export
from corpus_platform.curation.pii import PII_TYPES, scan_export
from corpus_platform.defs.curation.assets import dataset_splits, judged_examples, training_exports
from corpus_platform.defs.curation.partition_checks import one as _one
from corpus_platform.defs.curation.resources import CurationSettings, LLMJudge
from corpus_platform.defs.partitions import WAREHOUSE_POOL
from corpus_platform.defs.resources import CorpusHome, warehouse


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
