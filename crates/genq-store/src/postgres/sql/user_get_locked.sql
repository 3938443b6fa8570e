SELECT id, plan, credits, unfinished, running, created_at FROM users WHERE id = $1 FOR UPDATE
