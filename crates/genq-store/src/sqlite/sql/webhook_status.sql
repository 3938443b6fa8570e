-- One endpoint's backlog and dead deliveries, and its last success and failure.
SELECT
    (SELECT count(*) FROM deliveries WHERE endpoint = :endpoint AND state = 'pending'),
    (SELECT count(*) FROM deliveries WHERE endpoint = :endpoint AND state = 'dead'),
    (SELECT max(delivered_at) FROM deliveries WHERE endpoint = :endpoint AND state = 'delivered'),
    (SELECT last_error FROM deliveries
     WHERE endpoint = :endpoint AND failed_at IS NOT NULL ORDER BY failed_at DESC LIMIT 1),
    (SELECT max(failed_at) FROM deliveries WHERE endpoint = :endpoint)
