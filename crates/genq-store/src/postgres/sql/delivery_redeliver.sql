-- $1 endpoint, $2 event id, $3 now: a dead delivery, due again with a fresh day of retries.
UPDATE deliveries
SET state = 'pending', attempts = 0, first_due_at = $3, next_at = $3,
    lease_token = NULL, lease_until = NULL
WHERE endpoint = $1 AND event_id = $2 AND state = 'dead'
