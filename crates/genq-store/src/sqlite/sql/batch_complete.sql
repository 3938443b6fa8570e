-- ?1 batch id, ?2 now: complete once, the first time no job of it is unfinished.
UPDATE batches SET completed_at = ?2 WHERE id = ?1 AND unfinished = 0 AND completed_at IS NULL
