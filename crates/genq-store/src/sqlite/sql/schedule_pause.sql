-- ?1 name paused (?2), ?3 now
INSERT INTO schedules (name, paused, covered_until, updated_at)
VALUES (?1, ?2, ?3, ?3)
ON CONFLICT (name) DO UPDATE SET paused = ?2, updated_at = ?3
