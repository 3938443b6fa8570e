-- $1 key, $2 value, $3 now
INSERT INTO limits (key, value, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = $2, updated_at = $3
