-- The events outbox (SPEC §8): one row per event, written in the transaction of the change it
-- reports, so none is lost and none describes a change that was rolled back. SQLite has one
-- writer, so the id order is the commit order: an event's position is its id. AUTOINCREMENT:
-- an id is never used again after older events are pruned (SSE clients resume by it).
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    type       TEXT NOT NULL,
    job_id     TEXT,
    batch_id   TEXT,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- A batch completes once: when its count of unfinished jobs first reaches zero.
ALTER TABLE batches ADD COLUMN unfinished INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN completed_at INTEGER;
UPDATE batches SET unfinished = (
    SELECT count(*) FROM jobs
    WHERE jobs.batch_id = batches.id AND jobs.state IN ('queued', 'running', 'retrying'));
UPDATE batches SET completed_at = (
    SELECT max(finished_at) FROM jobs WHERE jobs.batch_id = batches.id)
WHERE unfinished = 0;
