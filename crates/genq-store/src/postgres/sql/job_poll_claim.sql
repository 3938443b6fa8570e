-- Take parked task jobs of kinds $1 whose poll is due ($7 now), at most $2:
-- $3 nonce, $4 node, $5 worker, $6 lease until.
UPDATE jobs
SET lease_token = $3 || '.' || id,
    lease_node = $4,
    lease_worker = $5,
    lease_expires_at = $6,
    updated_at = $7
WHERE id IN (
    SELECT id
    FROM jobs
    WHERE state = 'running'
      AND provider_task_id IS NOT NULL
      AND lease_expires_at <= $7
      AND kind = ANY($1)
    ORDER BY lease_expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING *
