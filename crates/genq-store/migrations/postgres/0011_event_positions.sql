-- Events get their position as they are written, no longer from a publisher that rewrote every
-- event row after its commit (an UPDATE of each event and two more index entries: a fifth of
-- the database's work per job). A writing transaction takes the events advisory lock just
-- before it inserts its events, as its last statement, and holds it until it has committed
-- (event_insert_many.sql); positions therefore still grow in the order events become visible,
-- and a reader that saw position p can never later find a smaller one committed.
--
-- Events written but not yet published by an older process get theirs now; such a process,
-- still running during an upgrade, keeps publishing its own through events_unpublished, which
-- new rows never enter.
UPDATE events e SET position = p.position
FROM (SELECT id, nextval('event_positions') AS position
      FROM (SELECT id FROM events WHERE position IS NULL ORDER BY id) o) p
WHERE e.id = p.id;
