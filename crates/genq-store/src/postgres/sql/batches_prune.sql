-- Completed batches no job of which is left, up to $1.
DELETE FROM batches WHERE id IN (
    SELECT b.id FROM batches b
    WHERE b.completed_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM job_owners o WHERE o.batch_id = b.id)
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
