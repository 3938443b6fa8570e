INSERT INTO limits (key, value, updated_at) VALUES (:key, :value, :now)
ON CONFLICT (key) DO UPDATE SET value = :value, updated_at = :now
