-- $1 id, $2 jobs accepted on day $4, $3 their total cost; the balance after. The day's usage
-- moves in the same statement (usage_add.sql's upsert).
WITH used AS (
    INSERT INTO daily_usage AS u (user_id, day, jobs) VALUES ($1, $4, greatest($2, 0))
    ON CONFLICT (user_id, day) DO UPDATE SET jobs = u.jobs + $2
)
UPDATE users SET credits = credits - $3, unfinished = unfinished + $2 WHERE id = $1 RETURNING credits
