-- Human review (corpus_platform/review): the daily queue, the reviewers' verdicts, and the examples as the
-- review left them. The verdict journal under CORPUS_HOME/state/review/ is the record the page writes;
-- review_verdicts is its import into the warehouse (rebuilt from the journal on every import).

-- Examples picked for review, one batch per day (`review_queue` asset). Rows of reviewed examples stay as
-- history; rows still pending when a new batch is built are replaced by it.
CREATE TABLE corpus.review_queue (
    queued_on   DATE      NOT NULL,
    example_id  VARCHAR   NOT NULL,
    source      VARCHAR   NOT NULL,
    date        DATE      NOT NULL,
    stage       VARCHAR   NOT NULL,  -- the pipeline stage that decided (filter | dedup | score | ...)
    decision    VARCHAR   NOT NULL,  -- kept | rejected | duplicate, as the pipeline decided
    rule        VARCHAR,             -- the rule that decided (null for kept)
    score       DOUBLE,              -- the decision's score (quality score at the score stage)
    threshold   DOUBLE,
    kind        VARCHAR   NOT NULL,  -- borderline | rejected | duplicate | kept (an audit sample)
    score_band  VARCHAR   NOT NULL,  -- quality band ("3-4", "unscored")
    stratum     VARCHAR   NOT NULL,  -- source|band|stage|rule: what the sample is stratified by
    priority    INTEGER   NOT NULL,  -- 1 = review first
    reason      VARCHAR   NOT NULL,  -- why it was picked
    queued_at   TIMESTAMP NOT NULL
);

-- Every verdict ever given (history); the latest per example wins (view corpus.review_latest).
CREATE TABLE corpus.review_verdicts (
    verdict_id        VARCHAR   NOT NULL,
    example_id        VARCHAR   NOT NULL,
    source            VARCHAR   NOT NULL,
    date              DATE      NOT NULL,
    verdict           VARCHAR   NOT NULL,  -- keep | reject | edit
    reason            VARCHAR,             -- required for reject
    edited_response   VARCHAR,             -- edit: the new last assistant turn
    original_response VARCHAR,             -- the last assistant turn the reviewer saw
    reviewer          VARCHAR   NOT NULL,
    reviewed_at       TIMESTAMP NOT NULL,
    imported_at       TIMESTAMP NOT NULL
);

-- Examples whose content the review changed: edited (new last assistant turn) or brought back after the
-- pipeline dropped them. Rebuilt as a whole with the splits; the export reads messages from here first.
CREATE TABLE corpus.reviewed_examples (
    example_id    VARCHAR   NOT NULL,
    source        VARCHAR   NOT NULL,
    date          DATE      NOT NULL,
    source_id     VARCHAR   NOT NULL,
    messages      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    metadata      JSON,                -- with "review": verdict, reviewer, original_response, restored_from
    collected_at  TIMESTAMP NOT NULL,
    content_hash  VARCHAR   NOT NULL,
    quality_score DOUBLE    NOT NULL,
    score_detail  JSON,
    verdict_id    VARCHAR   NOT NULL,
    restored_from VARCHAR              -- the table a dropped example was brought back from (null: was kept)
);
