-- Distillation views: what each teacher cost and how often it won.

-- The cost ledger per teacher: answers, errors, tokens and dollars (from the responses' usage).
CREATE OR REPLACE VIEW corpus.distillation_cost_per_teacher AS
SELECT teacher, model,
       count(*) FILTER (WHERE status = 'ok') AS answers,
       count(*) FILTER (WHERE status = 'error') AS errors,
       sum(attempts) AS attempts,
       sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens,
       sum(cost_usd) AS cost_usd,
       sum(cost_usd) / nullif(count(*) FILTER (WHERE status = 'ok'), 0) AS cost_per_answer_usd
FROM corpus.teacher_answers
GROUP BY teacher, model;

-- Win rate per teacher: over the instructions where it gave a judged answer, how often its answer scored
-- highest (ties go to the cheaper answer, then the teacher name), and how often it was kept.
CREATE OR REPLACE VIEW corpus.distillation_win_rate AS
WITH judged AS (
    SELECT instruction_hash, teacher, model, judged_score,
           row_number() OVER (PARTITION BY instruction_hash
                              ORDER BY judged_score DESC, cost_usd ASC, teacher ASC) AS rank,
           count(*) OVER (PARTITION BY instruction_hash) AS competitors
    FROM corpus.teacher_answers
    WHERE status = 'ok' AND judged_score IS NOT NULL
), kept AS (
    SELECT teacher, count(*) AS kept FROM corpus.distilled_examples GROUP BY teacher
)
SELECT j.teacher, j.model,
       count(*) AS judged_answers,
       count(*) FILTER (WHERE j.competitors > 1) AS contested,
       count(*) FILTER (WHERE j.rank = 1) AS wins,
       count(*) FILTER (WHERE j.rank = 1) / count(*) AS win_rate,
       count(*) FILTER (WHERE j.rank = 1 AND j.competitors > 1) / nullif(count(*) FILTER (WHERE j.competitors > 1), 0)
           AS contested_win_rate,
       avg(j.judged_score) AS mean_judged_score,
       coalesce(any_value(k.kept), 0) AS kept
FROM judged j LEFT JOIN kept k USING (teacher)
GROUP BY j.teacher, j.model;
