-- Running jobs whose lease expired before :before, soonest expired first: the rescuer's.
SELECT *
FROM jobs INDEXED BY jobs_leases
WHERE state = 'running'
  -- Parked task jobs are not stuck: their polls are claimed when due (job_poll_claim).
  AND provider_task_id IS NULL
  AND lease_expires_at < :before
ORDER BY lease_expires_at
LIMIT :limit
