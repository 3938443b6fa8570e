-- Move the rate budget $1 on the database's clock (one clock for every process):
-- $2 'reserve' takes $3 microseconds from max(tat, now) and answers how long to wait for them;
-- 'adjust' moves tat by $3 (not before now); 'hold' spends everything until now + $3.
WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now)
INSERT INTO rate_budgets AS b (name, tat)
SELECT $1, clock.now + CASE WHEN $2 = 'adjust' THEN greatest($3, 0) ELSE $3 END FROM clock
ON CONFLICT (name) DO UPDATE SET tat = (
    SELECT CASE $2
        WHEN 'reserve' THEN greatest(b.tat, clock.now) + $3
        WHEN 'adjust' THEN greatest(b.tat + $3, clock.now)
        ELSE greatest(b.tat, clock.now + $3)
    END
    FROM clock
)
RETURNING greatest(tat - $3 - (SELECT now FROM clock), 0) AS wait_us
