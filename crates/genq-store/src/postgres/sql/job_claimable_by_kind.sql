-- The best claimable jobs of kind $1, at most $2, locked; rows other claimers hold are
-- skipped, so concurrent claims never wait for each other or take the same job.
SELECT id, priority, fair_tag, user_id
FROM jobs
WHERE kind = $1 AND fair_tag IS NOT NULL
ORDER BY priority DESC, fair_tag, id
LIMIT $2
FOR UPDATE SKIP LOCKED
