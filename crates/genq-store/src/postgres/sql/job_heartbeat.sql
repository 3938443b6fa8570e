-- Renew leases: $1 ids, $2 their tokens, $3 lease until, $4 now; the renewed ones. A parked
-- job (no worker) keeps its lease: it is the time of its next poll. The rows
-- are locked in id order first, the order every multi-row write of jobs uses, so a heartbeat
-- and a batch of outcomes never deadlock.
WITH held AS (
    SELECT j.id
    FROM jobs AS j
    JOIN unnest($1::text[], $2::text[]) AS l (id, token)
      ON j.id = l.id AND j.lease_token = l.token
    WHERE j.state = 'running' AND j.lease_worker IS NOT NULL
    ORDER BY j.id
    FOR UPDATE OF j
)
UPDATE jobs
SET lease_expires_at = $3, updated_at = $4
FROM held
WHERE jobs.id = held.id
RETURNING jobs.id, jobs.lease_token
