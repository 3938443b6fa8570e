SELECT id, user_id, state
FROM jobs INDEXED BY jobs_due
WHERE fair_tag IS NULL AND state IN ('queued', 'retrying') AND run_at <= :now
ORDER BY run_at
LIMIT :limit
