-- $1 id, $2 user_id, $3 kind, $4 idempotency_key, $5 total, $6 now
INSERT INTO batches (id, user_id, kind, idempotency_key, total, unfinished, created_at)
VALUES ($1, $2, $3, $4, $5, $5, $6)
