-- $1 id, $2 now
UPDATE jobs
SET state = 'canceled',
    fair_tag = NULL,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    error_class = 'canceled',
    error_detail = 'canceled on request',
    finished_at = $2,
    updated_at = $2
WHERE id = $1 AND state IN ('queued', 'running', 'retrying')
RETURNING *
