-- Lease up to :limit due deliveries of :endpoint, oldest first, each the earliest pending one
-- of its job (or batch): a later event of the same key waits, even while an earlier one is in
-- flight or waiting for its retry. A batch's event also waits for every earlier event of the
-- batch's jobs.
UPDATE deliveries
SET lease_token = :token || '.' || id,
    lease_until = :lease_until,
    attempts = attempts + 1
WHERE id IN (
    SELECT d.id FROM deliveries d
    WHERE d.endpoint = :endpoint AND d.state = 'pending' AND d.next_at <= :now
      AND (d.lease_until IS NULL OR d.lease_until <= :now)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.endpoint = d.endpoint AND e.order_key = d.order_key
            AND e.state = 'pending' AND e.position < d.position)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries e
          WHERE e.endpoint = d.endpoint AND e.batch_id = d.order_key
            AND e.state = 'pending' AND e.position < d.position)
    ORDER BY d.position
    LIMIT :limit)
RETURNING id, event_id, lease_token, attempts, first_due_at
