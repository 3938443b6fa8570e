SELECT user_id, state, cost, day, series, kind, batch_id, attempt FROM jobs WHERE id = :id
