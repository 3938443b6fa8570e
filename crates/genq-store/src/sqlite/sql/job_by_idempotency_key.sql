SELECT * FROM jobs WHERE user_id = :user_id AND idempotency_key = :idempotency_key
