-- Park a running attempt on its provider task: $1 id, $2 token, $3 task id, $4 poll at, $5 now.
UPDATE jobs
SET provider_task_id = $3,
    provider_task_at = coalesce(provider_task_at, $5),
    lease_worker = NULL,
    lease_expires_at = $4,
    updated_at = $5
WHERE id = $1
  AND state = 'running'
  AND lease_token = $2
  AND (provider_task_id IS NULL OR provider_task_id = $3)
