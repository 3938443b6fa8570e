-- Fold the count moves of users $1 into their rows (locked first, users_lock.sql). A move
-- committed after this statement began stays for the next fold.
WITH moved AS (
    DELETE FROM user_count_moves WHERE user_id = ANY($1)
    RETURNING user_id, unfinished, running
),
sums AS (
    SELECT user_id, sum(unfinished) AS unfinished, sum(running) AS running
    FROM moved
    GROUP BY user_id
)
UPDATE users AS u
SET unfinished = u.unfinished + s.unfinished, running = u.running + s.running
FROM sums AS s
WHERE u.id = s.user_id
