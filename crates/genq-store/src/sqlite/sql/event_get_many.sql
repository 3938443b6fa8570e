-- Events by id (a notifier's claimed deliveries).
SELECT id, type, job_id, batch_id, user_id, kind, attempt, created_at
FROM events_full WHERE id IN (SELECT value FROM json_each(:ids))
