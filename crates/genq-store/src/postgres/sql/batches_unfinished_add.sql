-- $1 batch ids, $2 how their counts of unfinished jobs move, $3 now. The rows are locked in id
-- order first (after the jobs', after the users': see the lock order in mod.rs); a batch whose
-- count reaches zero while it has not completed yet completes now. The batches completing, for
-- their batch.completed (once: a batch that completed stays so).
WITH locked AS (
    SELECT b.id, b.unfinished + d.delta = 0 AND b.completed_at IS NULL AS completing, d.delta
    FROM batches AS b
    JOIN unnest($1::text[], $2::int[]) AS d (id, delta) ON b.id = d.id
    ORDER BY b.id
    FOR UPDATE OF b
)
UPDATE batches AS b
SET unfinished = b.unfinished + l.delta,
    completed_at = CASE WHEN l.completing THEN $3 ELSE b.completed_at END
FROM locked AS l
WHERE b.id = l.id
RETURNING b.id, l.completing
