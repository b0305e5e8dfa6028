-- LLM-judge answers, one row per (content_hash, judge model, prompt version): the cache that makes a
-- re-materialization never pay twice for the same conversation. An 'error' row (unparseable reply,
-- endpoint failure) is retried on the next run and then replaced; cost_usd, the token counts and
-- attempts add up every paid call for the key, failed ones included. The API key is never stored.
CREATE TABLE corpus.judgments (
    content_hash      VARCHAR   NOT NULL,  -- sha256 of the normalized conversation (deduplicated_examples)
    judge_model       VARCHAR   NOT NULL,
    prompt_version    VARCHAR   NOT NULL,  -- JudgeSettings.prompt_version + a digest of the prompt and dimensions
    score             DOUBLE,              -- mean of the dimension scores, 1-10; NULL when status = 'error'
    dimensions        JSON,                -- {dimension: 1-10}
    rationale         VARCHAR,
    prompt_tokens     BIGINT    NOT NULL,  -- from the responses' `usage`, all paid attempts for this key
    completion_tokens BIGINT    NOT NULL,
    cost_usd          DOUBLE    NOT NULL,
    attempts          INTEGER   NOT NULL,  -- runs that called the endpoint for this key
    status            VARCHAR   NOT NULL,  -- ok | error
    error             VARCHAR,             -- why, when status = 'error'
    judged_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (content_hash, judge_model, prompt_version)
);
