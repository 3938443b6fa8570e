-- Events of the outbox, in the transaction of the change they report: per row type, job id
-- (job events), batch id (batch events), attempt, now (written with several rows of VALUES,
-- see events.rs).
INSERT INTO events (type, job_id, batch_id, attempt, created_at)
VALUES (?, ?, ?, ?, ?)
