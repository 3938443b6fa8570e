INSERT INTO deliveries (endpoint, event_id, position, order_key, state, first_due_at, next_at)
VALUES (:endpoint, :event_id, :position, :order_key, 'pending', :now, :now)
ON CONFLICT (endpoint, event_id) DO NOTHING
