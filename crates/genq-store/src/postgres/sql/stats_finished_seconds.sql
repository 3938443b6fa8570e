-- $1 second: jobs that reached a final state since then, per second, state and (failed) error
-- class.
SELECT finished_at / 1000000 AS second, state,
       CASE WHEN state = 'failed' THEN error_class ELSE '' END AS class,
       count(*)::bigint AS n
FROM jobs
WHERE finished_at >= $1 * 1000000
GROUP BY 1, 2, 3
