-- The events outbox (SPEC §8): one row per event, written in the transaction of the change it
-- reports, so none is lost and none describes a change that was rolled back. SQLite has one
-- writer, so the id order is the commit order: an event's position is its id. Ids are rowids,
-- one more than the largest: the pruner always keeps the newest event, so an id is never given
-- twice (SSE clients resume by it). Every job change writes one: the row is small (a job
-- event names its job, a batch event its batch; user and kind are read through the view
-- below), and there is no other index (the pruner walks ids, which follow time).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    type       TEXT NOT NULL,
    job_id     TEXT,
    batch_id   TEXT,
    attempt    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Events with their user, kind and batch, as readers filter and show them.
CREATE VIEW events_full AS
SELECT e.id, e.id AS position, e.type, e.job_id,
       coalesce(j.batch_id, e.batch_id) AS batch_id,
       coalesce(j.user_id, b.user_id, '') AS user_id,
       coalesce(j.kind, b.kind, '') AS kind,
       e.attempt, e.created_at
FROM events e
LEFT JOIN jobs j ON j.id = e.job_id
LEFT JOIN batches b ON b.id = e.batch_id;

-- A batch completes once: when its count of unfinished jobs first reaches zero.
ALTER TABLE batches ADD COLUMN unfinished INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN completed_at INTEGER;
UPDATE batches SET unfinished = (
    SELECT count(*) FROM jobs
    WHERE jobs.batch_id = batches.id AND jobs.state IN ('queued', 'running', 'retrying'));
UPDATE batches SET completed_at = (
    SELECT max(finished_at) FROM jobs WHERE jobs.batch_id = batches.id)
WHERE unfinished = 0;
