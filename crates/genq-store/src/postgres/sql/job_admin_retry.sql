-- $1 id, $2 now, $3 fair tag
UPDATE jobs
SET state = 'queued',
    series = series + 1,
    retries_used = 0,
    rate_limit_waits = 0,
    result = NULL,
    error_class = NULL,
    error_detail = NULL,
    finished_at = NULL,
    run_at = $2,
    fair_tag = $3,
    updated_at = $2
WHERE id = $1 AND state IN ('failed', 'canceled')
RETURNING *
