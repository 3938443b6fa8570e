UPDATE jobs
SET state = 'running',
    attempt = attempt + 1,
    fair_tag = NULL,
    lease_token = :token,
    lease_node = :node_id,
    lease_worker = :worker_id,
    lease_expires_at = :lease_until,
    started_at = coalesce(started_at, :now),
    updated_at = :now
WHERE id = :id AND fair_tag IS NOT NULL
RETURNING *
