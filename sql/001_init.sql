-- Canonical example and the stage tables. Every stage table is replaced one (date, source) partition
-- at a time inside a transaction, so re-materializing a day never duplicates rows.
CREATE SCHEMA IF NOT EXISTS corpus;

-- One canonical example (mirrors corpus_platform/schema.py EXAMPLE_SCHEMA).
CREATE TABLE corpus.raw_examples (
    example_id   VARCHAR   NOT NULL,  -- sha256(source \x1f source_id)[:20]
    source       VARCHAR   NOT NULL,
    date         DATE      NOT NULL,
    source_id    VARCHAR   NOT NULL,
    messages     STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,  -- system/user/assistant turns
    metadata     JSON,                -- author, engagement, url, created_at, thread/session ids, ...
    collected_at TIMESTAMP NOT NULL
);

-- Input that could not become an example: never dropped silently.
CREATE TABLE corpus.quarantine (
    source         VARCHAR   NOT NULL,
    date           DATE      NOT NULL,
    file           VARCHAR   NOT NULL,
    line           BIGINT    NOT NULL,  -- 1-based line or record index; 0 = the whole file
    reason         VARCHAR   NOT NULL,
    raw            VARCHAR,             -- truncated preview of the offending input
    quarantined_at TIMESTAMP NOT NULL
);

-- Normalized (NFKC, whitespace) examples that passed the filters.
CREATE TABLE corpus.filtered_examples (
    example_id   VARCHAR   NOT NULL,
    source       VARCHAR   NOT NULL,
    date         DATE      NOT NULL,
    source_id    VARCHAR   NOT NULL,
    messages     STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    metadata     JSON,
    collected_at TIMESTAMP NOT NULL
);

-- Survivors of exact dedup; content_hash is the global exact-dup index.
CREATE TABLE corpus.deduplicated_examples (
    example_id   VARCHAR   NOT NULL,
    source       VARCHAR   NOT NULL,
    date         DATE      NOT NULL,
    source_id    VARCHAR   NOT NULL,
    messages     STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    metadata     JSON,
    collected_at TIMESTAMP NOT NULL,
    content_hash VARCHAR   NOT NULL   -- sha256 of the normalized conversation text
);

CREATE TABLE corpus.scored_examples (
    example_id    VARCHAR   NOT NULL,
    source        VARCHAR   NOT NULL,
    date          DATE      NOT NULL,
    source_id     VARCHAR   NOT NULL,
    messages      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    metadata      JSON,
    collected_at  TIMESTAMP NOT NULL,
    content_hash  VARCHAR   NOT NULL,
    quality_score DOUBLE    NOT NULL,  -- heuristic 1-10
    score_detail  JSON                 -- the components behind the score
);

-- Unpartitioned: every scored example assigned to train/val/test by a hash of its group.
CREATE TABLE corpus.dataset_splits (
    example_id    VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    date          DATE    NOT NULL,
    split         VARCHAR NOT NULL,  -- train | val | test
    group_key     VARCHAR NOT NULL,  -- thread / session / duplicate cluster kept on one side
    quality_score DOUBLE  NOT NULL,
    content_hash  VARCHAR NOT NULL
);

-- One row per example and stage outcome; rows of a (stage, date, source) are replaced together.
CREATE TABLE corpus.decisions (
    example_id   VARCHAR   NOT NULL,
    source       VARCHAR   NOT NULL,
    date         DATE      NOT NULL,
    stage        VARCHAR   NOT NULL,  -- filter | dedup | score | split
    decision     VARCHAR   NOT NULL,  -- kept | rejected | duplicate
    rule         VARCHAR,             -- the rule that decided (or the split name when kept at split)
    score        DOUBLE,
    threshold    DOUBLE,
    duplicate_of VARCHAR,
    decided_at   TIMESTAMP NOT NULL
);

-- Files written by training_exports, one row per file.
CREATE TABLE corpus.export_files (
    export_version VARCHAR   NOT NULL,
    format         VARCHAR   NOT NULL,
    split          VARCHAR   NOT NULL,
    path           VARCHAR   NOT NULL,
    rows           BIGINT    NOT NULL,
    sha256         VARCHAR   NOT NULL,
    created_at     TIMESTAMP NOT NULL
);
