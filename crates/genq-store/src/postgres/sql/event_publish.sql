-- Positions for up to $1 committed events that have none, in id order, by one process at a
-- time: the others find the lock taken and publish nothing. How many were published.
WITH turn AS (
    SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '/genq/events')) AS mine
), next AS (
    SELECT id FROM events, turn
    WHERE position IS NULL AND turn.mine
    ORDER BY id
    LIMIT $1
    FOR UPDATE OF events
), published AS (
    UPDATE events e SET position = p.position
    FROM (SELECT id, nextval('event_positions') AS position FROM (SELECT id FROM next ORDER BY id) o) p
    WHERE e.id = p.id
    RETURNING 1
)
SELECT count(*) FROM published
