-- When the next parked task job of kinds $1 is due for a poll.
SELECT min(lease_expires_at) AS due
FROM jobs
WHERE state = 'running' AND provider_task_id IS NOT NULL AND kind = ANY($1)
