-- $1 user, $2 before id, $3 limit
SELECT id, user_id, kind, amount, balance, job_id, reason, created_at, batch_id
FROM ledger
WHERE user_id = $1 AND id < $2
ORDER BY id DESC
LIMIT $3
