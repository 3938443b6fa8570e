-- A batch's count of unfinished jobs moves by :delta; whether it completes for the first time.
UPDATE batches SET unfinished = unfinished + :delta
WHERE id = :id
RETURNING unfinished = 0 AND completed_at IS NULL, user_id, kind
