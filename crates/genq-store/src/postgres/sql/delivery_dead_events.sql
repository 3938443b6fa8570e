-- $1 endpoint
SELECT event_id FROM deliveries WHERE endpoint = $1 AND state = 'dead'
ORDER BY event_id DESC LIMIT 100
