SELECT *
FROM jobs INDEXED BY jobs_leases
WHERE state = 'running'
  AND (:expired_before IS NULL OR lease_expires_at < :expired_before)
  AND (:node_id IS NULL OR lease_node = :node_id)
ORDER BY lease_expires_at
LIMIT :limit
