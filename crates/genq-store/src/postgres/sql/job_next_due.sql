-- When the next delayed or retrying job is due: the first entry of jobs_due (as ORDER BY and
-- LIMIT, which the planner always takes from the index; a min() was planned as a scan of the
-- whole index while the table had no statistics).
SELECT run_at AS due FROM jobs
WHERE fair_tag IS NULL AND state IN ('queued', 'retrying')
ORDER BY run_at
LIMIT 1
