-- The next :limit batches older than the one with id :before.
SELECT id, user_id, kind, total, unfinished, created_at, completed_at
FROM batches
WHERE id < :before
ORDER BY id DESC
LIMIT :limit
