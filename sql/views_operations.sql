-- Operations views: storage per source and table, and a training-readiness score per source.
-- Recreated on every connection that migrates (after sql/008, whose catalog they read).

-- Storage per table and source, in the warehouse and in the archive (sql/008, the archived_partitions
-- asset): rows, approximate bytes, days (partitions), oldest and newest day.
--   warehouse approx_bytes: the rows' JSON text (sum of strlen(to_json(row))), a size-of-content figure
--     comparable across tables and sources; DuckDB's compressed file is smaller (corpus.table_storage and
--     pragma_database_size() give the engine's own figures).
--   archive approx_bytes: the Parquet objects' sizes (zstd).
CREATE OR REPLACE VIEW corpus.storage_stats AS
WITH warehouse AS (
    SELECT 'raw_examples' AS table_name, source, date, count(*) AS rows, sum(strlen(to_json(t)::VARCHAR)) AS bytes
    FROM corpus.raw_examples t GROUP BY ALL
    UNION ALL SELECT 'quarantine', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.quarantine t GROUP BY ALL
    UNION ALL SELECT 'filtered_examples', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.filtered_examples t GROUP BY ALL
    UNION ALL SELECT 'deduplicated_examples', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.deduplicated_examples t GROUP BY ALL
    UNION ALL SELECT 'scored_examples', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.scored_examples t GROUP BY ALL
    UNION ALL SELECT 'dataset_splits', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.dataset_splits t GROUP BY ALL
    UNION ALL SELECT 'decisions', source, date, count(*), sum(strlen(to_json(t)::VARCHAR)) FROM corpus.decisions t GROUP BY ALL
)
SELECT table_name, source, 'warehouse' AS location, sum(rows)::BIGINT AS rows, sum(bytes)::BIGINT AS approx_bytes,
       count(DISTINCT date)::BIGINT AS partitions, min(date) AS oldest_day, max(date) AS newest_day
FROM warehouse GROUP BY ALL
UNION ALL
SELECT table_name, source, 'archive', sum(rows)::BIGINT, sum(bytes)::BIGINT, count(DISTINCT date)::BIGINT, min(date), max(date)
FROM corpus.archived_partitions GROUP BY ALL;

-- One row per source: the warehouse and the archive side by side. Days are those of raw_examples.
CREATE OR REPLACE VIEW corpus.storage_by_source AS
SELECT source,
       coalesce(sum(rows) FILTER (WHERE location = 'warehouse'), 0)::BIGINT AS warehouse_rows,
       coalesce(sum(approx_bytes) FILTER (WHERE location = 'warehouse'), 0)::BIGINT AS warehouse_approx_bytes,
       coalesce(max(partitions) FILTER (WHERE location = 'warehouse' AND table_name = 'raw_examples'), 0)::BIGINT AS warehouse_days,
       coalesce(sum(rows) FILTER (WHERE location = 'archive'), 0)::BIGINT AS archived_rows,
       coalesce(sum(approx_bytes) FILTER (WHERE location = 'archive'), 0)::BIGINT AS archived_bytes,
       coalesce(max(partitions) FILTER (WHERE location = 'archive' AND table_name = 'raw_examples'), 0)::BIGINT AS archived_days,
       min(oldest_day) AS oldest_day, max(newest_day) AS newest_day
FROM corpus.storage_stats
GROUP BY source;

-- The engine's own figures per corpus table: estimated rows and DuckDB's storage blocks (each block is
-- block_size bytes of the database file; pragma_database_size() has the file's totals).
CREATE OR REPLACE VIEW corpus.table_storage AS
SELECT table_name, estimated_size AS estimated_rows, column_count, has_primary_key
FROM duckdb_tables()
WHERE schema_name = 'corpus' AND database_name = current_database();

-- Training readiness per source (the seed's rules), from the warehouse (archived partitions do not count):
--   total            raw examples (corpus.raw_examples)
--   successful       examples kept by curation (corpus.scored_examples)
--   with_feedback    raw examples whose metadata has a non-null $.feedback (user feedback: conversations)
--   quality_examples kept examples with quality_score >= 7 (the 1-10 heuristic)
--   score = round(100 * (0.30 * min(1, total / 1000)
--                      + 0.25 * successful / total
--                      + 0.15 * with_feedback / total
--                      + 0.30 * quality_examples / successful), 1)   -- a share with a 0 denominator is 0
--   ready = score >= 70
-- A source without feedback can reach 85, so it is ready only with volume, a high keep rate and quality.
CREATE OR REPLACE VIEW corpus.training_readiness AS
WITH raw AS (
    SELECT source, count(*) AS total,
           count(*) FILTER (WHERE json_extract(metadata, '$.feedback') IS NOT NULL
                            AND json_type(json_extract(metadata, '$.feedback')) <> 'NULL') AS with_feedback
    FROM corpus.raw_examples GROUP BY source
), kept AS (
    SELECT source, count(*) AS successful, count(*) FILTER (WHERE quality_score >= 7) AS quality_examples
    FROM corpus.scored_examples GROUP BY source
), shares AS (
    SELECT source,
           coalesce(total, 0)::BIGINT AS total,
           coalesce(successful, 0)::BIGINT AS successful,
           coalesce(with_feedback, 0)::BIGINT AS with_feedback,
           coalesce(quality_examples, 0)::BIGINT AS quality_examples,
           least(1.0, coalesce(total, 0) / 1000.0) AS volume,
           CASE WHEN coalesce(total, 0) > 0 THEN coalesce(successful, 0) / total ELSE 0 END AS successful_share,
           CASE WHEN coalesce(total, 0) > 0 THEN coalesce(with_feedback, 0) / total ELSE 0 END AS feedback_share,
           CASE WHEN coalesce(successful, 0) > 0 THEN coalesce(quality_examples, 0) / successful ELSE 0 END AS quality_share
    FROM raw FULL OUTER JOIN kept USING (source)
)
SELECT source, total, successful, with_feedback, quality_examples,
       round(volume, 4) AS volume, round(successful_share, 4) AS successful_share,
       round(feedback_share, 4) AS feedback_share, round(quality_share, 4) AS quality_share,
       round(100 * (0.30 * volume + 0.25 * successful_share + 0.15 * feedback_share + 0.30 * quality_share), 1) AS score,
       round(100 * (0.30 * volume + 0.25 * successful_share + 0.15 * feedback_share + 0.30 * quality_share), 1) >= 70 AS ready
FROM shares;
