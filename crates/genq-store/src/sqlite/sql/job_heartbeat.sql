UPDATE jobs
SET lease_expires_at = :lease_until, updated_at = :now
WHERE id = :id AND state = 'running' AND lease_token = :token
