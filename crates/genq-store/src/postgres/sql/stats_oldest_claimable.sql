SELECT min(run_at) AS oldest FROM jobs WHERE fair_tag IS NOT NULL
