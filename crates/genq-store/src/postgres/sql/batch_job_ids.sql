-- $1 batch id
SELECT id FROM jobs WHERE batch_id = $1 ORDER BY id
