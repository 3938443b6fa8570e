-- Running jobs whose lease expired before :now (parked task jobs wait for a poll, not a
-- worker: not counted).
SELECT count(*)
FROM jobs INDEXED BY jobs_leases
WHERE state = 'running' AND provider_task_id IS NULL AND lease_expires_at < :now
