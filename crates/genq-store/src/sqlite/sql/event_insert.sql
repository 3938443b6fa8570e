-- One event of the outbox, in the transaction of the change it reports.
INSERT INTO events (type, job_id, batch_id, user_id, kind, attempt, created_at)
VALUES (:type, :job_id, :batch_id, :user_id, :kind, :attempt, :now)
