-- Delayed and retrying jobs due by $1, at most $2, locked.
SELECT id, user_id, state
FROM jobs
WHERE fair_tag IS NULL AND state IN ('queued', 'retrying') AND run_at <= $1
ORDER BY run_at
LIMIT $2
FOR UPDATE SKIP LOCKED
