-- Running jobs (not parked task jobs) whose lease expired before $1, or leased by node $2.
SELECT *
FROM jobs
WHERE state = 'running'
  AND provider_task_id IS NULL
  AND ($1::bigint IS NULL OR lease_expires_at < $1)
  AND ($2::text IS NULL OR lease_node = $2)
ORDER BY lease_expires_at
LIMIT $3
