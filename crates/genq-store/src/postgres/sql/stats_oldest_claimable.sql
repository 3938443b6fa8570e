-- When the oldest claimable job became due: per kind (the kinds the counts know), from
-- jobs_claimable, whose first column is the kind. A bare min() over `fair_tag IS NOT NULL`
-- was planned, on a table without statistics, as a scan of the whole table.
SELECT min(c.oldest) AS oldest
FROM (SELECT kind FROM job_counts UNION SELECT kind FROM job_count_moves) k,
     LATERAL (SELECT min(run_at) AS oldest
              FROM jobs
              WHERE jobs.kind = k.kind AND fair_tag IS NOT NULL) c
