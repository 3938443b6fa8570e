-- The events of one transaction, in the order they happened: $1 types, $2 job ids, $3 batch
-- ids, $4 user ids, $5 kinds, $6 attempts, $7 now. Their position comes later
-- (event_publish.sql).
INSERT INTO events (type, job_id, batch_id, user_id, kind, attempt, created_at)
SELECT type, job_id, batch_id, user_id, kind, attempt, $7
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[])
    WITH ORDINALITY AS e (type, job_id, batch_id, user_id, kind, attempt, n)
ORDER BY n
