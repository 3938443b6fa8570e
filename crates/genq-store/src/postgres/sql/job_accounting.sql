-- $1 id: its state and what its bookkeeping needs, locked.
SELECT user_id, state, cost, day, series, kind, batch_id, attempt FROM jobs WHERE id = $1 FOR UPDATE
