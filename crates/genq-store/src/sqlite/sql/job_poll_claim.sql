-- Take parked task jobs whose next poll is due (or whose poller died mid-poll): a fresh lease
-- token fences out whoever held them before; the attempt number does not change.
UPDATE jobs
SET lease_token = :nonce || '.' || id,
    lease_node = :node_id,
    lease_worker = :worker_id,
    lease_expires_at = :lease_until,
    updated_at = :now
WHERE id IN (
    SELECT id
    FROM jobs INDEXED BY jobs_polls
    WHERE state = 'running'
      AND provider_task_id IS NOT NULL
      AND lease_expires_at <= :now
      AND kind IN (SELECT value FROM json_each(:kinds))
    ORDER BY lease_expires_at
    LIMIT :limit
)
RETURNING *
