-- Jobs are counted as they move, not by counting rows: `stats` (the overview, /v1/stats,
-- /metrics) grouped the whole jobs table, which grows with it, and jobs_state_kind took an
-- entry for every version of every job (three a job) to serve it.
--
-- The tallies are the same as SQLite's (migrations/sqlite/0009_tallies.sql): each final
-- state, and 'waiting' for queued and retrying jobs together (a claim takes both alike);
-- running and retrying jobs are counted from jobs_state_some, where they are few. A
-- transaction appends what it moved to job_count_moves (event_insert_many.sql: no row every
-- transaction would update); the scheduler's upkeep folds the moves into job_counts, and a
-- count is job_counts' plus the moves not folded yet.
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
WHERE state <> 'running'
GROUP BY 1, 2;

DROP INDEX jobs_state_kind;
-- Jobs in the states that are few (or that an operator looks for among many), for counting and
-- listing by state; queued and succeeded jobs are found through the primary key, newest first.
CREATE INDEX jobs_state_some ON jobs (state, id) INCLUDE (kind)
    WHERE state IN ('running', 'retrying', 'failed', 'canceled');

-- A job's batch is inserted in the same transaction, just before it, and a batch is pruned only
-- once no job of it is left (batches_prune.sql): the foreign key's check on every inserted job
-- (a trigger and a locking read of the batch per row) guarded nothing those do not.
ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_batch_id_fkey;
