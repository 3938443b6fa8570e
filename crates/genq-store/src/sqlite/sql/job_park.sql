-- Park a running attempt that waits for its provider task: it stays running, fenced by the same
-- lease token, and its lease runs out exactly when the next poll is due.
UPDATE jobs
SET provider_task_id = :task_id,
    provider_task_at = coalesce(provider_task_at, :now),
    lease_worker = NULL,
    lease_expires_at = :poll_at,
    updated_at = :now
WHERE id = :id
  AND state = 'running'
  AND lease_token = :token
  AND (provider_task_id IS NULL OR provider_task_id = :task_id)
