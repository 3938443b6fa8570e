-- When the next parked task job of these kinds is due for a poll.
SELECT min(lease_expires_at)
FROM jobs INDEXED BY jobs_polls
WHERE state = 'running'
  AND provider_task_id IS NOT NULL
  AND kind IN (SELECT value FROM json_each(:kinds))
