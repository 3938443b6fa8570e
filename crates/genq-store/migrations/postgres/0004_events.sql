-- The events outbox (SPEC §8): one row per event, written in the transaction of the change it
-- reports, so none is lost and none describes a change that was rolled back.
--
-- Ids come from a sequence, and transactions commit in another order than they took their ids,
-- so readers do not follow ids: `position` is given to committed events, in id order, by one
-- process at a time (`event_publish.sql`, under an advisory lock). Positions therefore grow in
-- the order events became visible, never skip one a reader could miss, and keep each job's
-- events in order (a job's next change starts after its previous one committed).
--
-- Every job change writes one event: the row is small (a job event names its job, a batch
-- event its batch; user and kind are read through the view below).
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    position   bigint UNIQUE,
    type       text NOT NULL,
    job_id     text,
    batch_id   text,
    attempt    integer NOT NULL,
    created_at bigint NOT NULL
);

-- Published events with their user, kind and batch, as readers filter and show them.
CREATE VIEW events_full AS
SELECT e.id, e.position, e.type, e.job_id,
       coalesce(j.batch_id, e.batch_id) AS batch_id,
       coalesce(j.user_id, b.user_id, '') AS user_id,
       coalesce(j.kind, b.kind, '') AS kind,
       e.attempt, e.created_at
FROM events e
LEFT JOIN jobs j ON j.id = e.job_id
LEFT JOIN batches b ON b.id = e.batch_id
WHERE e.position IS NOT NULL;
CREATE INDEX events_unpublished ON events (id) WHERE position IS NULL;
CREATE SEQUENCE event_positions;

-- A batch completes once: when its count of unfinished jobs first reaches zero.
ALTER TABLE batches ADD COLUMN unfinished integer NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN completed_at bigint;
UPDATE batches SET unfinished = (
    SELECT count(*) FROM jobs
    WHERE jobs.batch_id = batches.id AND jobs.state IN ('queued', 'running', 'retrying'));
UPDATE batches SET completed_at = (
    SELECT max(finished_at) FROM jobs WHERE jobs.batch_id = batches.id)
WHERE unfinished = 0;
