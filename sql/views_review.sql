-- Views of the human review (corpus_platform/review). Recreated on every migrating connection.

-- The automatic decision per example that a reviewer judges: the stage before the review that dropped it,
-- else (kept) its score-stage row, which holds the quality score and min_quality. The stages after the
-- review (decontaminate, cap, split) are left out: a verdict comes before them.
CREATE OR REPLACE VIEW corpus.pipeline_decisions AS
SELECT example_id, source, date, stage, decision, rule, score, threshold, duplicate_of, decided_at
FROM corpus.decisions
WHERE stage NOT IN ('review', 'decontaminate', 'cap', 'split')
QUALIFY row_number() OVER (
    PARTITION BY example_id, source, date
    ORDER BY (decision <> 'kept') DESC,
             CASE WHEN decision <> 'kept' THEN 1 ELSE -1 END
               * CASE stage WHEN 'filter' THEN 1 WHEN 'dedup' THEN 2 WHEN 'score' THEN 4 ELSE 3 END,
             decided_at DESC
) = 1;

-- The verdict that counts for each example: its latest (the history stays in review_verdicts).
CREATE OR REPLACE VIEW corpus.review_latest AS
SELECT *
FROM corpus.review_verdicts
QUALIFY row_number() OVER (PARTITION BY example_id, source, date ORDER BY reviewed_at DESC, verdict_id DESC) = 1;

-- Reviewer agreement with the automatic decisions, per stage and rule (kept examples under rule '(kept)'):
-- agreed = the reviewer kept (or edited) what the pipeline kept, or rejected what it dropped. The two
-- disagreement counts say which way a threshold is off: reviewer_rejected_kept (pipeline too lenient),
-- reviewer_kept_dropped (too strict).
CREATE OR REPLACE VIEW corpus.review_agreement AS
SELECT coalesce(p.rule, '(kept)') AS rule,
       p.stage,
       count(*) AS reviewed,
       count(*) FILTER (WHERE (p.decision = 'kept') = (v.verdict <> 'reject')) AS agreed,
       round(count(*) FILTER (WHERE (p.decision = 'kept') = (v.verdict <> 'reject')) / count(*), 4) AS agreement_rate,
       count(*) FILTER (WHERE p.decision = 'kept' AND v.verdict = 'reject') AS reviewer_rejected_kept,
       count(*) FILTER (WHERE p.decision <> 'kept' AND v.verdict <> 'reject') AS reviewer_kept_dropped,
       count(*) FILTER (WHERE v.verdict = 'edit') AS edited,
       round(avg(p.score), 3) AS mean_score,
       max(p.threshold) AS threshold
FROM corpus.review_latest v
JOIN corpus.pipeline_decisions p USING (example_id, source, date)
GROUP BY 1, 2;

-- What the export writes per split row: the messages the review left (edited or brought back,
-- corpus.reviewed_examples), else the scored ones.
CREATE OR REPLACE VIEW corpus.split_examples AS
SELECT s.*, m.messages
FROM corpus.dataset_splits s
JOIN (
    SELECT example_id, source, date, messages FROM corpus.reviewed_examples
    UNION ALL
    SELECT e.example_id, e.source, e.date, e.messages FROM corpus.scored_examples e
    ANTI JOIN corpus.reviewed_examples r USING (example_id, source, date)
    UNION ALL
    SELECT d.example_id, d.source, d.date, d.messages FROM corpus.distilled_examples d
    ANTI JOIN corpus.reviewed_examples r USING (example_id, source, date)
) m USING (example_id, source, date);
