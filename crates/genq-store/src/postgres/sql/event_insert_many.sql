-- The events of one transaction, in the order they happened, with their positions: $1 types,
-- $2 job ids (job events), $3 batch ids (batch events), $4 attempts, $5 now; and what it
-- moved, appended to the counts (job_count_moves_add.sql's $1..$10 as $6..$15).
-- Run last in its transaction: it first takes the events lock, held until the transaction
-- ends (the InitPlan runs once, before any position is drawn), so one writer at a time draws
-- positions and commits, and positions follow commits (see
-- migrations/postgres/0011_event_positions.sql).
WITH moved AS (
    INSERT INTO job_count_moves (state, kind, n)
    SELECT * FROM unnest($6::text[], $7::text[], $8::bigint[])
), finished AS (
    INSERT INTO finished_second_moves (second, state, class, n)
    SELECT * FROM unnest($9::bigint[], $10::text[], $11::text[], $12::bigint[])
), users AS (
    INSERT INTO user_count_moves (user_id, unfinished, running)
    SELECT * FROM unnest($13::text[], $14::bigint[], $15::bigint[])
)
INSERT INTO events (position, type, job_id, batch_id, attempt, created_at)
SELECT nextval('event_positions'), type, job_id, batch_id, attempt, $5
FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
          WITH ORDINALITY AS e (type, job_id, batch_id, attempt, n)
      ORDER BY n) e
WHERE (SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/genq/events'))::text) IS NOT NULL
