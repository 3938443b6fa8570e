-- Add :n (negative when a job ends failed or canceled) to a user's usage of a day. The
-- inserted value is clamped because SQLite checks it before resolving the conflict.
INSERT INTO daily_usage (user_id, day, jobs) VALUES (:user_id, :day, max(:n, 0))
ON CONFLICT (user_id, day) DO UPDATE SET jobs = jobs + :n
