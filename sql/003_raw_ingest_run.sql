-- Lineage on the canonical example: the Dagster run that ingested each raw row, so a row in the
-- warehouse links to its run (logs, config, the files it read) in the UI. Rows written before this
-- migration keep NULL.
ALTER TABLE corpus.raw_examples ADD COLUMN ingest_run_id VARCHAR;
