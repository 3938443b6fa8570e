-- Take (or renew) slot $2 of $1 for $4 microseconds if fewer than $3 other live slots are
-- held; whether it was. Run after slot_lock.sql in the same transaction.
WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS now)
INSERT INTO concurrency_slots (name, holder, expires_at)
SELECT $1, $2, clock.now + $4
FROM clock
WHERE (SELECT count(*)
       FROM concurrency_slots, clock AS c
       WHERE name = $1 AND holder <> $2 AND expires_at > c.now) < $3
ON CONFLICT (name, holder) DO UPDATE SET expires_at = EXCLUDED.expires_at
RETURNING true
