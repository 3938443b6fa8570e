SELECT *
FROM jobs INDEXED BY jobs_leases
WHERE state = 'running'
  -- Parked task jobs are not stuck: their polls are claimed when due (job_poll_claim).
  AND provider_task_id IS NULL
  AND (:expired_before IS NULL OR lease_expires_at < :expired_before)
  AND (:node_id IS NULL OR lease_node = :node_id)
ORDER BY lease_expires_at
LIMIT :limit
