-- $1 batch id: jobs per state, and the last finish.
SELECT state, count(*)::bigint AS n, max(finished_at) AS finished FROM jobs WHERE batch_id = $1 GROUP BY state
