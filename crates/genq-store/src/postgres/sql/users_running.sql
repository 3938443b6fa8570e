-- Running counts of the users $1, as in user_get.sql.
SELECT id,
       running + coalesce((SELECT sum(m.running) FROM user_count_moves AS m
                           WHERE m.user_id = users.id), 0)::bigint AS running
FROM users
WHERE id = ANY($1)
