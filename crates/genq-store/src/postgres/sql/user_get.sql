-- A user; its counts are its row's plus its moves not folded yet (user_count_moves).
SELECT id, plan, credits,
       unfinished + coalesce((SELECT sum(m.unfinished) FROM user_count_moves AS m
                              WHERE m.user_id = users.id), 0)::bigint AS unfinished,
       running + coalesce((SELECT sum(m.running) FROM user_count_moves AS m
                           WHERE m.user_id = users.id), 0)::bigint AS running,
       created_at
FROM users
WHERE id = $1
