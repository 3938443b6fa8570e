-- $1 batch id: jobs per state, and the last finish.
SELECT j.state, count(*)::bigint AS n, max(j.finished_at) AS finished
FROM job_owners AS o
JOIN jobs AS j ON j.id = o.id
WHERE o.batch_id = $1
GROUP BY j.state
