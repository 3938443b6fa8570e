-- Finished (delivered or dead) deliveries last tried before $1, up to $2.
DELETE FROM deliveries WHERE id IN (
    SELECT id FROM deliveries WHERE state <> 'pending' AND last_at < $1 LIMIT $2)
