-- Take the chosen jobs: one statement for the whole claim. Each lease token is the claim's
-- random nonce joined with the job id, so tokens are unguessable and unique per attempt.
UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    fair_tag = NULL,
    lease_token = :nonce || '.' || id,
    lease_node = :node_id,
    lease_worker = :worker_id,
    lease_expires_at = :lease_until,
    started_at = coalesce(started_at, :now),
    attempt_started_at = :now,
    provider_task_id = NULL,
    provider_task_at = NULL,
    updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND fair_tag IS NOT NULL
RETURNING *
