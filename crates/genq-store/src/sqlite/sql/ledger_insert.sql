INSERT INTO ledger (user_id, kind, amount, balance, job_id, series, reason, created_at)
VALUES (:user_id, :kind, :amount, :balance, :job_id, :series, :reason, :now)
