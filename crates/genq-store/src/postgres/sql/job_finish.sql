-- A transition out of `running`, fenced by the lease token (and, for the rescuer, by expiry).
-- $1 id, $2 token, $3 expired_before, $4 state, $5 result, $6 error_class, $7 error_detail,
-- $8 run_at, $9 fair_tag, $10 uses_retry, $11 rate_limit_wait, $12 finished_at, $13 now
UPDATE jobs
SET state = $4,
    result = $5,
    error_class = CASE WHEN $4 = 'succeeded' THEN NULL ELSE coalesce($6, error_class) END,
    error_detail = CASE WHEN $4 = 'succeeded' THEN NULL ELSE coalesce($7, error_detail) END,
    run_at = coalesce($8, run_at),
    fair_tag = $9,
    retries_used = retries_used + $10,
    rate_limit_waits = rate_limit_waits + $11,
    finished_at = $12,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    updated_at = $13
WHERE id = $1
  AND state = 'running'
  AND lease_token = $2
  AND ($3::bigint IS NULL OR lease_expires_at < $3)
