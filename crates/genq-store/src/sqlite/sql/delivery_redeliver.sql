-- A dead delivery, due again now with a fresh day of retries.
UPDATE deliveries
SET state = 'pending', attempts = 0, first_due_at = :now, next_at = :now,
    lease_token = NULL, lease_until = NULL
WHERE endpoint = :endpoint AND event_id = :event_id AND state = 'dead'
