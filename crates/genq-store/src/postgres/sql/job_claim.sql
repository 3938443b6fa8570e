-- Take the chosen (and locked) jobs $1: $2 nonce, $3 node, $4 worker, $5 lease until, $6 now.
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    fair_tag = NULL,
    lease_token = $2 || '.' || id,
    lease_node = $3,
    lease_worker = $4,
    lease_expires_at = $5,
    started_at = coalesce(started_at, $6),
    provider_task_id = NULL,
    provider_task_at = NULL,
    updated_at = $6
WHERE id = ANY($1) AND fair_tag IS NOT NULL
RETURNING *
