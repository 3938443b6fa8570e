SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE fair_tag IS NULL AND state IN ('queued', 'retrying')
