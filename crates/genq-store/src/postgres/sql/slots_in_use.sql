-- Live slots of $1.
SELECT count(*)::bigint
FROM concurrency_slots
WHERE name = $1 AND expires_at > (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
