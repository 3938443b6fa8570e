-- $1 limit, $2 id: the next batches older than that one.
SELECT id, user_id, kind, total, unfinished, created_at, completed_at
FROM batches
WHERE id < $2
ORDER BY id DESC
LIMIT $1
