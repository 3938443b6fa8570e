UPDATE jobs
SET state = 'queued',
    series = series + 1,
    retries_used = 0,
    rate_limit_waits = 0,
    result = NULL,
    error_class = NULL,
    error_detail = NULL,
    finished_at = NULL,
    run_at = :now,
    fair_tag = :fair_tag,
    updated_at = :now
WHERE id = :id AND state IN ('failed', 'canceled')
RETURNING *
