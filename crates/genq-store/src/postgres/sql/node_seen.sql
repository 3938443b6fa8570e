-- $1 node id, $2 pid, $3 version, $4 concurrency, $5 started at, $6 now: a process says it is
-- alive.
INSERT INTO nodes (node_id, pid, version, concurrency, started_at, seen_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (node_id) DO UPDATE SET
    pid = excluded.pid, version = excluded.version, concurrency = excluded.concurrency,
    started_at = excluded.started_at, seen_at = excluded.seen_at
