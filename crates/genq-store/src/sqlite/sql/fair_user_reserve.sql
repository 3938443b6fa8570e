-- Reserve :n consecutive tags for a user, starting no earlier than the virtual time and after
-- the user's previous job. Returns the first reserved tag.
INSERT INTO fair_users (user_id, next_tag) VALUES (:user_id, :vtime + :n)
ON CONFLICT (user_id) DO UPDATE SET next_tag = max(next_tag, :vtime) + :n
RETURNING next_tag - :n
