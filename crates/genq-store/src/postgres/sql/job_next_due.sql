SELECT min(run_at) AS due FROM jobs WHERE fair_tag IS NULL AND state IN ('queued', 'retrying')
