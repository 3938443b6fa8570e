-- The newest published event's position (0 with none).
SELECT coalesce(max(position), 0)::bigint FROM events
