INSERT INTO batches (id, user_id, kind, idempotency_key, total, unfinished, created_at)
VALUES (:id, :user_id, :kind, :idempotency_key, :total, :total, :now)
