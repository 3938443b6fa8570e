SELECT id FROM jobs WHERE batch_id = :id ORDER BY id
