-- $1 second: jobs that reached a final state since then, per second, state and (failed) error
-- class, folded or not (see migrations/postgres/0012_job_counts.sql).
SELECT second, state, class, sum(n)::bigint AS n
FROM (SELECT second, state, class, n FROM finished_seconds WHERE second >= $1
      UNION ALL
      SELECT second, state, class, n FROM finished_second_moves WHERE second >= $1) t
GROUP BY 1, 2, 3
