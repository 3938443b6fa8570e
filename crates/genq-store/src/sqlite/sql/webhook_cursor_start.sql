-- An endpoint seen for the first time starts at the newest event: no flood of history.
INSERT INTO webhook_cursors (endpoint, position)
VALUES (:endpoint, (SELECT coalesce(max(id), 0) FROM events))
ON CONFLICT (endpoint) DO NOTHING
