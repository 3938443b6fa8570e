-- Jobs by state and kind: retrying ones counted from jobs_state_some (they are few), the rest
-- as the transactions that moved them tallied them ('waiting': queued or retrying; see
-- migrations/postgres/0012_job_counts.sql).
SELECT state, kind, count(*)::bigint AS n FROM jobs
WHERE state = 'retrying'
GROUP BY state, kind
UNION ALL
SELECT state, kind, sum(n)::bigint AS n
FROM (SELECT state, kind, n FROM job_counts
      UNION ALL
      SELECT state, kind, n FROM job_count_moves) t
GROUP BY state, kind
