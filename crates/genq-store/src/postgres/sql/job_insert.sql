-- $1 id, $2 kind, $3 user_id, $4 batch_id, $5 priority, $6 max_retries, $7 payload, $8 cost,
-- $9 idempotency_key, $10 run_at, $11 now, $12 fair_tag, $13 day
INSERT INTO jobs (id, kind, user_id, batch_id, state, priority, max_retries, payload, cost,
                  idempotency_key, run_at, created_at, updated_at, fair_tag, day)
VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)
