-- What a transaction moved, appended: $1 tallies, $2 kinds, $3 deltas; jobs finished: $4
-- seconds, $5 final states, $6 classes, $7 how many; users' counters: $8 ids, $9 unfinished
-- deltas, $10 running deltas (no row of users is touched or locked).
WITH finished AS (
    INSERT INTO finished_second_moves (second, state, class, n)
    SELECT * FROM unnest($4::bigint[], $5::text[], $6::text[], $7::bigint[])
), users AS (
    INSERT INTO user_count_moves (user_id, unfinished, running)
    SELECT * FROM unnest($8::text[], $9::bigint[], $10::bigint[])
)
INSERT INTO job_count_moves (state, kind, n)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
