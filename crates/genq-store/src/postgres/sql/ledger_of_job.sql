-- $1 job: its debits and refunds, oldest first (ledger_once leads with job_id). A batch's one
-- debit names the batch, not its jobs.
SELECT id, user_id, kind, amount, balance, job_id, reason, created_at, batch_id
FROM ledger
WHERE job_id = $1
ORDER BY id
