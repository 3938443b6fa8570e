-- ?1 tally (a final state, or 'waiting'), ?2 kind: its count of jobs moves by ?3.
INSERT INTO job_counts (state, kind, n) VALUES (?1, ?2, ?3)
ON CONFLICT (state, kind) DO UPDATE SET n = n + excluded.n
