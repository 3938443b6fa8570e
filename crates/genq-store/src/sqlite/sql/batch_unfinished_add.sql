-- ?1 batch id: its count of unfinished jobs moves by ?2.
UPDATE batches SET unfinished = unfinished + ?2 WHERE id = ?1
