-- ?1 second, ?2 final state, ?3 error class ('' unless failed): ?4 more jobs finished so.
INSERT INTO finished_seconds (second, state, class, n) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (second, state, class) DO UPDATE SET n = n + excluded.n
