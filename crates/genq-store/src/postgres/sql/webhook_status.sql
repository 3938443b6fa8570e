-- $1 endpoint: its backlog and dead deliveries, and its last success and failure.
SELECT
    (SELECT count(*) FROM deliveries WHERE endpoint = $1 AND state = 'pending') AS backlog,
    (SELECT count(*) FROM deliveries WHERE endpoint = $1 AND state = 'dead') AS dead,
    (SELECT max(delivered_at) FROM deliveries WHERE endpoint = $1 AND state = 'delivered') AS last_success_at,
    (SELECT last_error FROM deliveries
     WHERE endpoint = $1 AND failed_at IS NOT NULL ORDER BY failed_at DESC LIMIT 1) AS last_error,
    (SELECT max(failed_at) FROM deliveries WHERE endpoint = $1) AS last_error_at
