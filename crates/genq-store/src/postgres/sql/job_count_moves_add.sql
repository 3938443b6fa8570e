-- What a transaction moved, appended: $1 tallies, $2 kinds, $3 deltas.
INSERT INTO job_count_moves (state, kind, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
