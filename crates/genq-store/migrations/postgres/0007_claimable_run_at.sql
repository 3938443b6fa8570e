-- `/metrics` reports how long the oldest claimable job has waited (min(run_at) over the fair
-- queue) at every scrape: with run_at in the claim index, an index-only scan.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (kind, priority DESC, fair_tag, id) INCLUDE (user_id, run_at)
    WHERE fair_tag IS NOT NULL;
