-- Insert the jobs of one request in one statement, with their batch ($6 not null) and, for
-- jobs due now ($15), consecutive fair-queue tags reserved for their user, no earlier than the
-- virtual time (as fair_users_reserve_many.sql). Arrays, one element per job: $1 id, $2 payload. The rest is the same for
-- all: $3 the batch's idempotency key, $4 kind, $5 user_id, $6 batch_id, $7 priority,
-- $8 max_retries, $9 cost, $10 the job's idempotency_key, $11 run_at, $12 now, $13 day,
-- $14 how many, $15 due.
WITH batch AS (
    INSERT INTO batches (id, user_id, kind, idempotency_key, total, unfinished, created_at)
    SELECT $6, $5, $4, $3, $14, $14, $12
    WHERE $6::text IS NOT NULL
), tag AS (
    INSERT INTO fair_users AS f (user_id, next_tag)
    SELECT $5, vtime + $14 FROM fair_clock WHERE id = 1 AND $15
    ON CONFLICT (user_id) DO UPDATE SET next_tag = greatest(f.next_tag + $14, excluded.next_tag)
    RETURNING next_tag - $14 AS first
)
INSERT INTO jobs (id, kind, user_id, batch_id, state, priority, max_retries, payload, cost,
                  idempotency_key, run_at, created_at, updated_at, fair_tag, day)
SELECT j.id, $4, $5, $6, 'queued', $7, $8, j.payload, $9, $10, $11, $12, $12,
       (SELECT first FROM tag) + j.n - 1, $13
FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS j (id, payload, n)
