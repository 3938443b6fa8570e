-- The events of one transaction, in the order they happened: $1 types, $2 job ids (job
-- events), $3 batch ids (batch events), $4 attempts, $5 now. Their position comes later
-- (event_publish.sql).
INSERT INTO events (type, job_id, batch_id, attempt, created_at)
SELECT type, job_id, batch_id, attempt, $5
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
    WITH ORDINALITY AS e (type, job_id, batch_id, attempt, n)
ORDER BY n
