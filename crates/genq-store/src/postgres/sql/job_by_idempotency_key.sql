-- $1 user_id, $2 idempotency_key
SELECT * FROM jobs WHERE user_id = $1 AND idempotency_key = $2
