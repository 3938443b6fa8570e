-- $1 after ('' for the first page), $2 limit: users in id order, their counts as user_get.sql
-- has them (the row's plus the moves not folded yet).
SELECT id, plan, credits,
       unfinished + coalesce((SELECT sum(m.unfinished) FROM user_count_moves AS m
                              WHERE m.user_id = users.id), 0)::bigint AS unfinished,
       running + coalesce((SELECT sum(m.running) FROM user_count_moves AS m
                           WHERE m.user_id = users.id), 0)::bigint AS running,
       created_at
FROM users
WHERE id > $1
ORDER BY id
LIMIT $2
