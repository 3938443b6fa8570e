-- Running jobs are tallied too (job_counts.state 'running'), like the final states: on
-- PostgreSQL counting them from an index meant visiting the dead entries every claim leaves,
-- and both backends share one tally scheme (genq-store's outbox::tallied).
INSERT INTO job_counts (state, kind, n)
SELECT 'running', kind, count(*) FROM jobs WHERE state = 'running' GROUP BY kind;
