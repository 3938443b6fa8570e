-- Give back slot $2 of $1, and drop expired ones of $1.
DELETE FROM concurrency_slots
WHERE name = $1
  AND (holder = $2 OR expires_at <= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
