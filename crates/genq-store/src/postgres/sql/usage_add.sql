-- $1 user, $2 day, $3 delta
INSERT INTO daily_usage AS u (user_id, day, jobs) VALUES ($1, $2, greatest($3, 0))
ON CONFLICT (user_id, day) DO UPDATE SET jobs = u.jobs + $3
