SELECT state, count(*), max(finished_at) FROM jobs WHERE batch_id = :id GROUP BY state
