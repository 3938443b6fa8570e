-- Move the counters of many users at once: $1 ids, $2 unfinished deltas, $3 running deltas.
-- The rows are locked in id order first, the order every writer of users uses.
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS d (id, unfinished, running)
),
held AS (
    SELECT u.id FROM users AS u JOIN d ON u.id = d.id ORDER BY u.id FOR UPDATE OF u
)
UPDATE users AS u
SET unfinished = u.unfinished + d.unfinished, running = u.running + d.running
FROM d, held
WHERE u.id = d.id AND u.id = held.id
