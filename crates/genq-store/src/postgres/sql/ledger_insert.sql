-- $1 user, $2 kind, $3 amount, $4 balance, $5 job_id, $6 series, $7 batch_id, $8 reason, $9 now
INSERT INTO ledger (user_id, kind, amount, balance, job_id, series, batch_id, reason, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
