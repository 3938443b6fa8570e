UPDATE jobs
SET state = 'canceled',
    fair_tag = NULL,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    error_class = 'canceled',
    error_detail = 'canceled on request',
    finished_at = :now,
    updated_at = :now
WHERE id = :id AND (state = 'queued' OR state = 'running' OR state = 'retrying')
RETURNING *
