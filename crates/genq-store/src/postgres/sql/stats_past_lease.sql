-- Running jobs whose lease expired before $1 (parked task jobs wait for a poll, not a worker:
-- not counted).
SELECT count(*)::bigint AS n
FROM jobs
WHERE state = 'running' AND provider_task_id IS NULL AND lease_expires_at < $1
