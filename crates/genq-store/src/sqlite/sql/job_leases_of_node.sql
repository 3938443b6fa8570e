-- Running jobs (not parked task jobs) leased by node :node_id: what a restarted process takes
-- back.
SELECT *
FROM jobs INDEXED BY jobs_leases
WHERE state = 'running' AND provider_task_id IS NULL AND lease_node = :node_id
ORDER BY lease_expires_at
LIMIT :limit
