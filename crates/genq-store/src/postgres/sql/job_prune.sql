-- Up to $3 jobs in state $1 that finished before $2, oldest first, with their job_owners
-- rows; rows another transaction holds are left for the next step. The kind of each, for the
-- counts.
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE state = $1 AND finished_at IS NOT NULL AND finished_at < $2
        ORDER BY finished_at
        LIMIT $3
        FOR UPDATE SKIP LOCKED)
    RETURNING id, user_id, kind
), owners AS (
    DELETE FROM job_owners AS o USING gone WHERE o.user_id = gone.user_id AND o.id = gone.id
)
SELECT kind FROM gone
