-- $1 batch ids with no unfinished job, $2 now: the ones completing for the first time, for
-- their batch.completed.
UPDATE batches SET completed_at = $2
WHERE id = ANY($1) AND completed_at IS NULL
RETURNING id
