-- $1 limit: the newest batches (ids are time-ordered), with their counts of unfinished jobs.
SELECT id, user_id, kind, total, unfinished, created_at, completed_at
FROM batches
ORDER BY id DESC
LIMIT $1
