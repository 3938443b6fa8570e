-- The outcome of one attempt, fenced by its lease: $1 id, $2 token, $3 state (delivered,
-- pending again at $6, or dead), $4 status, $5 error, $6 next at, $7 now.
UPDATE deliveries
SET state = $3,
    next_at = coalesce($6, next_at),
    last_status = $4,
    last_error = coalesce($5, last_error),
    failed_at = CASE WHEN $5 IS NULL THEN failed_at ELSE $7 END,
    last_at = $7,
    delivered_at = CASE WHEN $3 = 'delivered' THEN $7 END,
    lease_token = NULL,
    lease_until = NULL
WHERE id = $1 AND lease_token = $2 AND state = 'pending'
