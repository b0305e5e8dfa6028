-- Distillation: teachers' answers to instructions from chosen sources, and the best answer per instruction.

-- One row per (instruction, teacher, model): the key that makes a re-materialization never ask a teacher
-- twice. An 'error' row (retries exhausted, a rejected request, an empty reply, a failed batch line) keeps
-- its reason and is asked again on a later run. Tokens and cost come from the responses' `usage` at the
-- teacher's prices. The API key is never stored.
CREATE TABLE corpus.teacher_answers (
    instruction_hash  VARCHAR   NOT NULL,  -- sha256 of the instruction text (first user turn), 32 hex
    teacher           VARCHAR   NOT NULL,  -- the configured teacher name
    model             VARCHAR   NOT NULL,  -- the configured model id
    example_id        VARCHAR   NOT NULL,  -- the scored example the instruction came from
    source            VARCHAR   NOT NULL,
    date              DATE      NOT NULL,
    category          VARCHAR   NOT NULL,  -- code | math | writing | general (the routing key)
    instruction       VARCHAR   NOT NULL,
    answer            VARCHAR,
    finish_reason     VARCHAR,             -- stop | length (cut at max_tokens) | ...
    mode              VARCHAR   NOT NULL,  -- online | batch
    prompt_tokens     BIGINT    NOT NULL,
    completion_tokens BIGINT    NOT NULL,
    cost_usd          DOUBLE    NOT NULL,  -- every paid attempt for the key
    attempts          INTEGER   NOT NULL,  -- HTTP attempts (or batch lines) for the key, retries included
    content_hash      VARCHAR,             -- sha256 of the normalized (instruction, answer) conversation
    judged_score      DOUBLE,              -- the judge's 1-10 score (corpus.judgments holds the judge's side)
    judge_dimensions  JSON,
    judge_model       VARCHAR,
    status            VARCHAR   NOT NULL,  -- ok | error
    error             VARCHAR,             -- why, when status = 'error'
    answered_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (instruction_hash, teacher, model)
);

-- The winning answer per instruction when its judged score clears the threshold: the columns of
-- corpus.scored_examples plus the winner and its score, so the splits can take them in with the rest.
-- metadata holds the provenance: original example, teachers asked, their scores, the winner.
CREATE TABLE corpus.distilled_examples (
    example_id    VARCHAR   NOT NULL,  -- of (source, 'distilled:' || instruction_hash); never an original's id
    source        VARCHAR   NOT NULL,
    date          DATE      NOT NULL,
    source_id     VARCHAR   NOT NULL,
    messages      STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
    metadata      JSON,
    collected_at  TIMESTAMP NOT NULL,
    content_hash  VARCHAR   NOT NULL,
    quality_score DOUBLE    NOT NULL,  -- the same heuristic as scored_examples
    score_detail  JSON,
    teacher       VARCHAR   NOT NULL,
    judged_score  DOUBLE    NOT NULL
);
