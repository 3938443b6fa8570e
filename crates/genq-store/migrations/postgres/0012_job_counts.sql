-- Jobs are counted as they move, not by counting rows: `stats` (the overview, /v1/stats,
-- /metrics) grouped the whole jobs table, which grows with it, read an hour of finished jobs
-- for "finished in the last hour" (36 million rows at 10,000 jobs/s), and jobs_state_kind
-- took an entry for every version of every job (three a job) to serve it.
--
-- The tallies are SQLite's (migrations/sqlite/0009_tallies.sql, 0011_running_tally.sql): each
-- state but queued and retrying, which count together as 'waiting' (a claim takes both alike;
-- retrying jobs are counted from jobs_state_some, where they are few); and jobs finished per
-- second, final state and failure class, two hours kept. A transaction appends what it moved
-- to the moves tables (with its events, event_insert_many.sql: no row that every transaction
-- would update); the scheduler's upkeep folds the moves into job_counts and finished_seconds,
-- and a count is the folded rows' plus the moves not folded yet.
--
-- Processes of an older version must be stopped before this runs: they move jobs without
-- appending their moves.
CREATE TABLE job_counts (
    state text NOT NULL,
    kind  text NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (state, kind)
);
CREATE TABLE job_count_moves (
    state text NOT NULL,
    kind  text NOT NULL,
    n     bigint NOT NULL
);
INSERT INTO job_counts (state, kind, n)
SELECT CASE WHEN state IN ('queued', 'retrying') THEN 'waiting' ELSE state END, kind, count(*)
FROM jobs
GROUP BY 1, 2;

CREATE TABLE finished_seconds (
    second bigint NOT NULL,
    state  text NOT NULL,
    class  text NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (second, state, class)
);
CREATE TABLE finished_second_moves (
    second bigint NOT NULL,
    state  text NOT NULL,
    class  text NOT NULL,
    n      bigint NOT NULL
);
INSERT INTO finished_seconds (second, state, class, n)
SELECT finished_at / 1000000, state, CASE WHEN state = 'failed' THEN error_class ELSE '' END,
       count(*)
FROM jobs
WHERE finished_at >= (extract(epoch FROM now())::bigint - 7200) * 1000000
GROUP BY 1, 2, 3;

DROP INDEX jobs_state_kind;
-- Jobs in the states that are few, or that an operator looks for among many, for counting
-- retrying jobs and listing by state. Queued and succeeded jobs are found through the primary
-- key, newest first; running ones through jobs_leases.
CREATE INDEX jobs_state_some ON jobs (state, id) WHERE state IN ('retrying', 'failed', 'canceled');

-- A job's batch is inserted in the same transaction, just before it, and a batch is pruned only
-- once no job of it is left (batches_prune.sql): the foreign key's check on every inserted job
-- (a trigger and a locking read of the batch per row) guarded nothing those do not.
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_batch_id_fkey;
