-- $1 user_id, $2 idempotency_key
SELECT id FROM batches WHERE user_id = $1 AND idempotency_key = $2
