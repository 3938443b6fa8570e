SELECT user_id, state, cost, day, series FROM jobs WHERE id = :id
