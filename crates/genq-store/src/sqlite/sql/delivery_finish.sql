-- The outcome of one attempt, fenced by its lease: delivered, due again at :next_at, or dead
-- (:state).
UPDATE deliveries
SET state = :state,
    next_at = coalesce(:next_at, next_at),
    last_status = :status,
    last_error = coalesce(:error, last_error),
    failed_at = CASE WHEN :error IS NULL THEN failed_at ELSE :now END,
    last_at = :now,
    delivered_at = CASE WHEN :state = 'delivered' THEN :now END,
    lease_token = NULL,
    lease_until = NULL
WHERE id = :id AND lease_token = :token AND state = 'pending'
