-- Running jobs (not parked task jobs, which wait for their poll) whose lease expired before
-- $1, soonest expired first, at most $2: the rescuer's.
SELECT *
FROM jobs
WHERE state = 'running' AND provider_task_id IS NULL AND lease_expires_at < $1
ORDER BY lease_expires_at
LIMIT $2
