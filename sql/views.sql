-- Views are recreated on every connection that migrates, so they always match the code.

-- The decision record: one row per input example and stage outcome.
CREATE OR REPLACE VIEW corpus.example_decisions AS
SELECT example_id, source, date, stage, decision, rule, score, threshold, duplicate_of, decided_at
FROM corpus.decisions;

-- Where each raw example ended: its last stage and the decision there. Stages in order: filter, dedup
-- (exact within the day), score, cluster (global exact + near duplicates), judge, review, decontaminate,
-- cap (author cap), split.
CREATE OR REPLACE VIEW corpus.example_outcomes AS
SELECT r.example_id, r.source, r.date,
       d.stage AS final_stage, d.decision, d.rule, d.score, d.threshold, d.duplicate_of
FROM corpus.raw_examples r
LEFT JOIN (
    SELECT *, row_number() OVER (
        PARTITION BY example_id, source, date
        ORDER BY CASE stage WHEN 'filter' THEN 1 WHEN 'dedup' THEN 2 WHEN 'score' THEN 3 WHEN 'cluster' THEN 4
                            WHEN 'judge' THEN 5 WHEN 'review' THEN 6 WHEN 'decontaminate' THEN 7 WHEN 'cap' THEN 8
                            WHEN 'split' THEN 9 END DESC
    ) AS rn
    FROM corpus.decisions
) d ON d.example_id = r.example_id AND d.source = r.source AND d.date = r.date AND d.rn = 1;

-- Rejections and duplicates per source, day, stage and rule.
CREATE OR REPLACE VIEW corpus.rejection_rates AS
SELECT source, date, stage, decision, rule, count(*) AS examples,
       count(*) / sum(count(*)) OVER (PARTITION BY source, date, stage) AS share
FROM corpus.decisions
GROUP BY source, date, stage, decision, rule;

-- Row counts of every stage per partition, for the demo summary and the UI.
CREATE OR REPLACE VIEW corpus.stage_counts AS
SELECT 'raw_examples' AS stage, source, date, count(*) AS examples FROM corpus.raw_examples GROUP BY ALL
UNION ALL SELECT 'filtered_examples', source, date, count(*) FROM corpus.filtered_examples GROUP BY ALL
UNION ALL SELECT 'deduplicated_examples', source, date, count(*) FROM corpus.deduplicated_examples GROUP BY ALL
UNION ALL SELECT 'scored_examples', source, date, count(*) FROM corpus.scored_examples GROUP BY ALL
UNION ALL SELECT 'duplicate_clusters (removed)', source, date, count(*) FROM corpus.duplicate_clusters WHERE kind <> 'kept' GROUP BY ALL
UNION ALL SELECT 'dataset_splits', source, date, count(*) FROM corpus.dataset_splits GROUP BY ALL;

-- Every duplicate cluster with its kept example, size and members (ids), largest first.
CREATE OR REPLACE VIEW corpus.cluster_summary AS
SELECT cluster_id, any_value(kept_id) AS kept_id, any_value(size) AS size,
       count(*) FILTER (WHERE kind = 'exact') AS exact_members, count(*) FILTER (WHERE kind = 'near') AS near_members,
       min(jaccard) AS min_jaccard, list(example_id ORDER BY example_id) AS members
FROM corpus.duplicate_clusters GROUP BY cluster_id;

-- Why was this example dropped? Every rejection and duplicate with its rule, score and threshold (or
-- the example it duplicates), next to the start of its first user and first assistant turn.
CREATE OR REPLACE VIEW corpus.why_dropped AS
SELECT d.example_id, d.source, d.date, d.stage, d.decision, d.rule, d.score, d.threshold, d.duplicate_of,
       left(list_filter(r.messages, m -> m.role = 'user')[1].content, 200) AS first_user_text,
       left(list_filter(r.messages, m -> m.role = 'assistant')[1].content, 200) AS first_assistant_text,
       d.decided_at
FROM corpus.decisions d
LEFT JOIN corpus.raw_examples r USING (example_id, source, date)
WHERE d.decision <> 'kept';
