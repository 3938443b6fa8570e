-- Among the ?2 oldest events, those older than ?1 that every endpoint's cursor has passed and
-- no pending delivery needs. Never the newest event: ids must keep growing (SSE resumes by
-- them). Events are written in time order, so the oldest ids are the oldest events.
DELETE FROM events WHERE id IN (
    SELECT id FROM (SELECT id, created_at FROM events ORDER BY id LIMIT ?2) oldest
    WHERE oldest.created_at < ?1
      AND oldest.id < (SELECT max(id) FROM events)
      AND oldest.id <= coalesce((SELECT min(position) FROM webhook_cursors), oldest.id)
      AND oldest.id < coalesce(
          (SELECT min(position) FROM deliveries WHERE state = 'pending'), oldest.id + 1))
