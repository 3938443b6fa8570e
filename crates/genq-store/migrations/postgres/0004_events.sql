-- The events outbox (SPEC §8): one row per event, written in the transaction of the change it
-- reports, so none is lost and none describes a change that was rolled back.
--
-- Ids come from a sequence, and transactions commit in another order than they took their ids,
-- so readers do not follow ids: `position` is given to committed events, in id order, by one
-- process at a time (`event_publish.sql`, under an advisory lock). Positions therefore grow in
-- the order events became visible, never skip one a reader could miss, and keep each job's
-- events in order (a job's next change starts after its previous one committed).
CREATE TABLE events (
    id         bigserial PRIMARY KEY,
    position   bigint UNIQUE,
    type       text NOT NULL,
    job_id     text,
    batch_id   text,
    user_id    text NOT NULL,
    kind       text NOT NULL,
    attempt    integer NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX events_unpublished ON events (id) WHERE position IS NULL;
CREATE INDEX events_created ON events (created_at);
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
