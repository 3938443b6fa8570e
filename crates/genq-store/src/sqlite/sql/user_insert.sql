INSERT INTO users (id, plan, credits, created_at) VALUES (:id, :plan, :credits, :now)
ON CONFLICT (id) DO NOTHING
