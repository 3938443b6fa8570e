INSERT INTO ledger (user_id, kind, amount, balance, job_id, series, batch_id, reason, created_at)
VALUES (:user_id, :kind, :amount, :balance, :job_id, :series, :batch_id, :reason, :now)
