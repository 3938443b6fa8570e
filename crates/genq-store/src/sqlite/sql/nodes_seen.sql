-- Nodes seen since :since, in id order.
SELECT node_id, pid, version, concurrency, started_at, seen_at
FROM nodes
WHERE seen_at >= :since
ORDER BY node_id
