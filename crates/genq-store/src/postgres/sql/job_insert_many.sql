-- Insert the jobs of one request in one statement. Arrays, one element per job: $1 id,
-- $2 payload, $3 fair_tag. The rest is the same for all: $4 kind, $5 user_id, $6 batch_id,
-- $7 priority, $8 max_retries, $9 cost, $10 idempotency_key, $11 run_at, $12 now, $13 day.
INSERT INTO jobs (id, kind, user_id, batch_id, state, priority, max_retries, payload, cost,
                  idempotency_key, run_at, created_at, updated_at, fair_tag, day)
SELECT j.id, $4, $5, $6, 'queued', $7, $8, j.payload, $9, $10, $11, $12, $12, j.fair_tag, $13
FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS j (id, payload, fair_tag)
