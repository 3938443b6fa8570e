-- $1 endpoint, $2 event ids, $3 positions, $4 order keys, $5 batches of job events, $6 now
INSERT INTO deliveries
    (endpoint, event_id, position, order_key, batch_id, state, first_due_at, next_at)
SELECT $1, event_id, position, order_key, batch_id, 'pending', $6, $6
FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[])
    AS d (event_id, position, order_key, batch_id)
ON CONFLICT (endpoint, event_id) DO NOTHING
