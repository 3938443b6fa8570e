-- Create-then-poll providers: the task the running attempt created, so that a poll after a
-- restart finds it again instead of paying for a new one.
--
-- A running job with a provider task is *parked* between polls: it keeps its lease token, and
-- its lease_expires_at is the time of its next poll. Polls are claimed when that time comes
-- (jobs_polls); the rescuer leaves such jobs alone, because an expired lease only means a poll
-- is due (or one died mid-way and is simply taken again).

ALTER TABLE jobs ADD COLUMN provider_task_id TEXT;
ALTER TABLE jobs ADD COLUMN provider_task_at INTEGER;

CREATE INDEX jobs_polls ON jobs (lease_expires_at)
    WHERE state = 'running' AND provider_task_id IS NOT NULL;
