-- The processes running an engine on this database, as each last said it was alive (every
-- `worker.heartbeat`); the overview shows them. A node not seen for a day is forgotten. One
-- row per process, written by that process only: nothing waits on another's row.
CREATE TABLE nodes (
    node_id     text PRIMARY KEY,
    pid         bigint NOT NULL,
    version     text NOT NULL,
    concurrency integer NOT NULL,
    started_at  bigint NOT NULL,
    seen_at     bigint NOT NULL
);
