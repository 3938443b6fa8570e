SELECT min(run_at) FROM jobs WHERE fair_tag IS NOT NULL
