-- Among the $2 oldest events, those older than $1 that every endpoint's cursor has passed and
-- no pending delivery needs. Never the newest: positions must keep growing.
DELETE FROM events WHERE position IN (
    SELECT position FROM (
        SELECT position, created_at FROM events ORDER BY position LIMIT $2) oldest
    WHERE oldest.created_at < $1
      AND oldest.position < (SELECT max(position) FROM events)
      AND oldest.position <= coalesce((SELECT min(position) FROM webhook_cursors), oldest.position)
      AND oldest.position < coalesce(
          (SELECT min(position) FROM deliveries WHERE state = 'pending'), oldest.position + 1))
