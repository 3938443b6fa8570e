-- Jobs by state and kind: the unfinished counted from the index, the finished as the
-- transactions that finished them tallied them.
SELECT state, kind, count(*) FROM jobs INDEXED BY jobs_state_kind
WHERE state IN ('queued', 'running', 'retrying')
GROUP BY state, kind
UNION ALL
SELECT state, kind, n FROM finished_counts WHERE n > 0
