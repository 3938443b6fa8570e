-- Users with count moves not folded yet, at most $1.
SELECT DISTINCT user_id FROM user_count_moves LIMIT $1
