SELECT min(run_at) FROM jobs INDEXED BY jobs_claimable WHERE fair_tag IS NOT NULL
