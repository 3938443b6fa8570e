-- The processes running an engine on this database, as each last said it was alive (every
-- `worker.heartbeat`); the overview shows them. A node not seen for a day is forgotten.
CREATE TABLE nodes (
    node_id     TEXT PRIMARY KEY,
    pid         INTEGER NOT NULL,
    version     TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
) WITHOUT ROWID;
