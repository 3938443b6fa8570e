-- Fold the count moves into job_counts and finished_seconds (rows in one order, so that two
-- folds never deadlock), and forget the seconds more than two hours before $1 (a second). A
-- move committed after this statement began stays for the next fold.
WITH moved AS (
    DELETE FROM job_count_moves RETURNING state, kind, n
), counted AS (
    INSERT INTO job_counts AS c (state, kind, n)
    SELECT state, kind, sum(n) FROM moved GROUP BY state, kind ORDER BY state, kind
    ON CONFLICT (state, kind) DO UPDATE SET n = c.n + excluded.n
), finished AS (
    DELETE FROM finished_second_moves RETURNING second, state, class, n
), forgotten AS (
    DELETE FROM finished_seconds WHERE second < $1 - 7200
)
INSERT INTO finished_seconds AS f (second, state, class, n)
SELECT second, state, class, sum(n) FROM finished
WHERE second >= $1 - 7200
GROUP BY second, state, class ORDER BY second, state, class
ON CONFLICT (second, state, class) DO UPDATE SET n = f.n + excluded.n
