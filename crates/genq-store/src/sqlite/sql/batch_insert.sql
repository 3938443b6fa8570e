INSERT INTO batches (id, user_id, kind, idempotency_key, total, created_at)
VALUES (:id, :user_id, :kind, :idempotency_key, :total, :now)
