-- A user (as user_get.sql) and what admission reads besides: its jobs on day $2 and every
-- stored limit. The caller holds the user's row locked (user_lock.sql).
SELECT id, plan, credits,
       unfinished + coalesce((SELECT sum(m.unfinished) FROM user_count_moves AS m
                              WHERE m.user_id = users.id), 0)::bigint AS unfinished,
       running + coalesce((SELECT sum(m.running) FROM user_count_moves AS m
                           WHERE m.user_id = users.id), 0)::bigint AS running,
       created_at,
       (SELECT jobs FROM daily_usage WHERE user_id = $1 AND day = $2) AS used,
       array(SELECT key FROM limits ORDER BY key) AS keys,
       array(SELECT value FROM limits ORDER BY key) AS vals
FROM users
WHERE id = $1
