-- Reserve $2 consecutive tags for user $1, no earlier than the virtual time; the first.
INSERT INTO fair_users AS f (user_id, next_tag)
SELECT $1, vtime + $2 FROM fair_clock WHERE id = 1
ON CONFLICT (user_id) DO UPDATE SET next_tag = greatest(f.next_tag + $2, excluded.next_tag)
RETURNING next_tag - $2 AS first
