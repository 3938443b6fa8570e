SELECT event_id FROM deliveries
WHERE endpoint = :endpoint AND state = 'dead'
ORDER BY event_id DESC LIMIT 100
