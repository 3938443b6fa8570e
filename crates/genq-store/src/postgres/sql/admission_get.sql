-- What admission reads besides the user (whose row the caller holds locked): $1's jobs on
-- day $2, and every stored limit.
SELECT (SELECT jobs FROM daily_usage WHERE user_id = $1 AND day = $2) AS used,
       array(SELECT key FROM limits ORDER BY key) AS keys,
       array(SELECT value FROM limits ORDER BY key) AS vals
