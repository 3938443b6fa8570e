-- Up to $3 jobs in state $1 beyond the newest $2 of that state (newest: latest finished, then
-- latest id). The kind of each, for the counts.
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE state = $1 AND finished_at IS NOT NULL
    ORDER BY finished_at DESC, id DESC
    LIMIT $3 OFFSET $2)
RETURNING kind
