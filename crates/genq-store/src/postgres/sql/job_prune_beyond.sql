-- Up to $3 jobs in state $1 beyond the newest $2 of that state (newest: latest finished, then
-- latest id), with their job_owners rows. The kind of each, for the counts.
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE state = $1 AND finished_at IS NOT NULL
        ORDER BY finished_at DESC, id DESC
        LIMIT $3 OFFSET $2)
    RETURNING id, user_id, kind
), owners AS (
    DELETE FROM job_owners AS o USING gone WHERE o.user_id = gone.user_id AND o.id = gone.id
)
SELECT kind FROM gone
