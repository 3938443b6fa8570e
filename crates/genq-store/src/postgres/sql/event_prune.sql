-- Among the $2 oldest published events, those older than $1 that every endpoint's cursor has
-- passed and no pending delivery needs. Never the newest: positions must keep growing.
DELETE FROM events WHERE id IN (
    SELECT id FROM (
        SELECT id, position, created_at FROM events
        WHERE position IS NOT NULL ORDER BY position LIMIT $2) oldest
    WHERE oldest.created_at < $1
      AND oldest.position < (SELECT max(position) FROM events)
      AND oldest.position <= coalesce((SELECT min(position) FROM webhook_cursors), oldest.position)
      AND oldest.position < coalesce(
          (SELECT min(position) FROM deliveries WHERE state = 'pending'), oldest.position + 1))
