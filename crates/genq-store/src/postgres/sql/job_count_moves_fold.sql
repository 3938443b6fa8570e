-- Fold the count moves into job_counts (rows in one order, so that two folds never deadlock).
-- A move committed after this statement began stays for the next fold.
WITH moved AS (
    DELETE FROM job_count_moves RETURNING state, kind, n
)
INSERT INTO job_counts AS c (state, kind, n)
SELECT state, kind, sum(n) FROM moved GROUP BY state, kind ORDER BY state, kind
ON CONFLICT (state, kind) DO UPDATE SET n = c.n + excluded.n
