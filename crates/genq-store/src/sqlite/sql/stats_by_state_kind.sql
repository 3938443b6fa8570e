-- Jobs by state and kind: retrying ones counted from the index (they are few), the rest as the
-- transactions that moved them tallied them ('waiting': queued or retrying).
SELECT state, kind, count(*) FROM jobs INDEXED BY jobs_state_kind
WHERE state = 'retrying'
GROUP BY state, kind
UNION ALL
SELECT state, kind, n FROM job_counts WHERE n <> 0
