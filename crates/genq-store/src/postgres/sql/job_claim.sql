-- Take the chosen (and locked) jobs $1: $2 nonce, $3 node, $4 worker, $5 lease until, $6 now.
-- Driven by the ids (a join with unnest, not `id = ANY($1)`): under a generic plan the planner
-- would otherwise scan the claimable index, whose every entry matches `fair_tag IS NOT NULL`,
-- and the claim would grow with the queue.
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    fair_tag = NULL,
    lease_token = $2 || '.' || jobs.id,
    lease_node = $3,
    lease_worker = $4,
    lease_expires_at = $5,
    started_at = coalesce(started_at, $6),
    attempt_started_at = $6,
    provider_task_id = NULL,
    provider_task_at = NULL,
    updated_at = $6
FROM unnest($1::text[]) AS chosen (id)
WHERE jobs.id = chosen.id AND jobs.fair_tag IS NOT NULL
RETURNING jobs.*
