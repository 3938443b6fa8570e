-- Renew a lease; a parked job (no worker) keeps its lease: it is the time of its next poll.
UPDATE jobs
SET lease_expires_at = :lease_until, updated_at = :now
WHERE id = :id AND state = 'running' AND lease_token = :token
  AND lease_worker IS NOT NULL
