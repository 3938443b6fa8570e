-- $1 event positions (a notifier's claimed deliveries)
SELECT id, position, type, job_id, batch_id, user_id, kind, attempt, created_at
FROM events_full WHERE position = ANY($1)
