INSERT INTO deliveries
    (endpoint, event_id, position, order_key, batch_id, state, first_due_at, next_at)
VALUES (:endpoint, :event_id, :position, :order_key, :batch_id, 'pending', :now, :now)
ON CONFLICT (endpoint, event_id) DO NOTHING
