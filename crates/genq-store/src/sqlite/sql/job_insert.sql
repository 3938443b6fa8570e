INSERT INTO jobs (id, kind, user_id, batch_id, state, priority, max_retries, payload, cost,
                  idempotency_key, run_at, created_at, updated_at, fair_tag, day)
VALUES (:id, :kind, :user_id, :batch_id, 'queued', :priority, :max_retries, :payload, :cost,
        :idempotency_key, :run_at, :now, :now, :fair_tag, :day)
