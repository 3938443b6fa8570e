-- Accept the jobs of one request in one statement: insert them (and their job_owners rows),
-- with their batch ($6 not null) and, for jobs due now ($15), consecutive fair-queue tags
-- reserved for their user, no earlier than the virtual time (as fair_users_reserve_many.sql);
-- move the user's day's usage, count of unfinished jobs and credits, debit the ledger ($16 the
-- total cost, when above 0) and send the NOTIFY hint ($18 when not null, on channel $17). The
-- caller holds the user's row locked and has admitted the jobs. The data-modifying parts run
-- whether read or not; the hint is a SELECT, so the statement reads it to run it.
-- Arrays, one element per job: $1 id, $2 payload. The rest is the same for all: $3 the batch's
-- idempotency key, $4 kind, $5 user_id, $6 batch_id, $7 priority, $8 max_retries, $9 cost,
-- $10 the job's idempotency_key, $11 run_at, $12 now, $13 day, $14 how many, $15 due,
-- $16 total cost, $17 channel, $18 hint, $19 the ledger's reason.
WITH batch AS (
    INSERT INTO batches (id, user_id, kind, idempotency_key, total, unfinished, created_at)
    SELECT $6, $5, $4, $3, $14, $14, $12
    WHERE $6::text IS NOT NULL
), tag AS (
    INSERT INTO fair_users AS f (user_id, next_tag)
    SELECT $5, vtime + $14 FROM fair_clock WHERE id = 1 AND $15
    ON CONFLICT (user_id) DO UPDATE SET next_tag = greatest(f.next_tag + $14, excluded.next_tag)
    RETURNING next_tag - $14 AS first
), inserted AS (
    INSERT INTO jobs (id, kind, user_id, batch_id, state, priority, max_retries, payload, cost,
                      idempotency_key, run_at, created_at, updated_at, fair_tag, day)
    SELECT j.id, $4, $5, $6, 'queued', $7, $8, j.payload, $9, $10, $11, $12, $12,
           (SELECT first FROM tag) + j.n - 1, $13
    FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS j (id, payload, n)
), owned AS (
    INSERT INTO job_owners (id, user_id, batch_id)
    SELECT id, $5, $6 FROM unnest($1::text[]) AS j (id)
), used AS (
    INSERT INTO daily_usage AS u (user_id, day, jobs) VALUES ($5, $13, $14)
    ON CONFLICT (user_id, day) DO UPDATE SET jobs = u.jobs + $14
), accepted AS (
    UPDATE users SET credits = credits - $16, unfinished = unfinished + $14 WHERE id = $5
    RETURNING credits
), debit AS (
    -- One entry: for the batch, or for the job (its first series) when not in a batch.
    INSERT INTO ledger (user_id, kind, amount, balance, job_id, series, batch_id, reason,
                        created_at)
    SELECT $5, 'debit', -$16, credits,
           CASE WHEN $6::text IS NULL THEN ($1::text[])[1] END,
           CASE WHEN $6::text IS NULL THEN 1 END, $6, $19, $12
    FROM accepted
    WHERE $16 > 0
), hint AS (
    SELECT pg_notify($17, $18) WHERE $18::text IS NOT NULL
)
SELECT count(*) AS hinted FROM hint
