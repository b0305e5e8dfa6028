-- The archive catalog: one row per (table, source, date) partition moved out of the warehouse to Parquet
-- on S3-compatible storage by the `archived_partitions` asset (corpus_platform/operations/archive.py).
-- A row is written in the same transaction that deletes the partition's rows, and only after the
-- object was read back and matched (row count and sha256), so the catalog never names data that is
-- not in the bucket, and the warehouse never loses rows that are not there.
CREATE TABLE corpus.archived_partitions (
    table_name  VARCHAR   NOT NULL,  -- the corpus.* table the rows came from
    source      VARCHAR   NOT NULL,
    date        DATE      NOT NULL,
    uri         VARCHAR   NOT NULL,  -- s3://<bucket>/<prefix>/<table>/source=<s>/date=<d>/part.parquet
    bucket      VARCHAR   NOT NULL,
    object_key  VARCHAR   NOT NULL,
    rows        BIGINT    NOT NULL,
    bytes       BIGINT    NOT NULL,  -- size of the Parquet object
    sha256      VARCHAR   NOT NULL,  -- of the Parquet object, checked on the copy read back from the bucket
    archived_at TIMESTAMP NOT NULL,
    run_id      VARCHAR              -- the Dagster run that archived it (NULL outside Dagster)
);
