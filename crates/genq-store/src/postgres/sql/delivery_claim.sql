-- Lease up to $2 due deliveries of $1, oldest first, each the earliest pending one of its job
-- (or batch): a later event of the same key waits, even while an earlier one is in flight or
-- waiting for its retry. A batch's event also waits for every earlier event of the batch's
-- jobs. $3 now, $4 lease until, $5 nonce. Rows another process is taking
-- are skipped.
UPDATE deliveries
SET lease_token = $5 || '.' || id,
    lease_until = $4,
    attempts = attempts + 1
WHERE id IN (
    SELECT d.id FROM deliveries d
    WHERE d.endpoint = $1 AND d.state = 'pending' AND d.next_at <= $3
      AND (d.lease_until IS NULL OR d.lease_until <= $3)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.endpoint = d.endpoint AND e.order_key = d.order_key
            AND e.state = 'pending' AND e.position < d.position)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.endpoint = d.endpoint AND e.batch_id = d.order_key
            AND e.state = 'pending' AND e.position < d.position)
    ORDER BY d.position
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, position, lease_token, attempts, first_due_at
