-- ?1 final state, ?2 kind: its count of finished jobs moves by ?3.
INSERT INTO finished_counts (state, kind, n) VALUES (?1, ?2, ?3)
ON CONFLICT (state, kind) DO UPDATE SET n = n + excluded.n
