-- $1 id, $2 plan, $3 now; whether it was created.
INSERT INTO users (id, plan, credits, created_at) VALUES ($1, $2, 0, $3)
ON CONFLICT (id) DO NOTHING
