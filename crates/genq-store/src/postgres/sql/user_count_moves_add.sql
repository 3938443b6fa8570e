-- Moves of many users' counters at once, appended (no row of users is touched or locked):
-- $1 ids, $2 unfinished deltas, $3 running deltas.
INSERT INTO user_count_moves (user_id, unfinished, running)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
