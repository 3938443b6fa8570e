SELECT id, user_id, kind, amount, balance, job_id, reason, created_at, batch_id
FROM ledger
WHERE user_id = :user_id AND id < :before
ORDER BY id DESC
LIMIT :limit
