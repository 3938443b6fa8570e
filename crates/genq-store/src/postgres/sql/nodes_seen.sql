-- $1: nodes seen since then, in id order.
SELECT node_id, pid, version, concurrency, started_at, seen_at
FROM nodes
WHERE seen_at >= $1
ORDER BY node_id
