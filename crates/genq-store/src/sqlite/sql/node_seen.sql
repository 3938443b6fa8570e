-- A process says it is alive.
INSERT INTO nodes (node_id, pid, version, concurrency, started_at, seen_at)
VALUES (:node_id, :pid, :version, :concurrency, :started_at, :seen_at)
ON CONFLICT (node_id) DO UPDATE SET
    pid = excluded.pid, version = excluded.version, concurrency = excluded.concurrency,
    started_at = excluded.started_at, seen_at = excluded.seen_at
