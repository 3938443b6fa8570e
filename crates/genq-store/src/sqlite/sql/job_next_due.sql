SELECT min(run_at) FROM jobs WHERE fair_tag IS NULL AND state IN ('queued', 'retrying')
