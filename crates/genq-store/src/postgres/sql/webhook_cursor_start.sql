-- $1 endpoint: one seen for the first time starts at the newest published event.
INSERT INTO webhook_cursors (endpoint, position)
VALUES ($1, (SELECT coalesce(max(position), 0) FROM events))
ON CONFLICT (endpoint) DO NOTHING
