-- $1 endpoint, $2 event ids, $3 positions, $4 order keys, $5 now
INSERT INTO deliveries (endpoint, event_id, position, order_key, state, first_due_at, next_at)
SELECT $1, event_id, position, order_key, 'pending', $5, $5
FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS d (event_id, position, order_key)
ON CONFLICT (endpoint, event_id) DO NOTHING
