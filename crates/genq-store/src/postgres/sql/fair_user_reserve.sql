-- Reserve $3 consecutive tags for user $1 no earlier than the virtual time $2; the first.
INSERT INTO fair_users AS f (user_id, next_tag) VALUES ($1, $2 + $3)
ON CONFLICT (user_id) DO UPDATE SET next_tag = greatest(f.next_tag, $2) + $3
RETURNING next_tag - $3 AS first
