-- Running jobs (not parked task jobs) leased by node $1, at most $2: what a restarted process
-- takes back.
SELECT *
FROM jobs
WHERE state = 'running' AND provider_task_id IS NULL AND lease_node = $1
ORDER BY lease_expires_at
LIMIT $2
