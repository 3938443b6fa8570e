-- $1 name covered up to $2 (never back); $3 whether a slot ran, with $4 slot, $5 job id,
-- $6 error; $7 now.
INSERT INTO schedules (name, covered_until, last_slot, last_job_id, last_error, updated_at)
VALUES ($1, $2, CASE WHEN $3 THEN $4::bigint END, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET
    covered_until = greatest(schedules.covered_until, excluded.covered_until),
    last_slot = CASE WHEN $3 THEN $4::bigint ELSE schedules.last_slot END,
    last_job_id = CASE WHEN $3 THEN $5 ELSE schedules.last_job_id END,
    last_error = CASE WHEN $3 THEN $6 ELSE schedules.last_error END,
    updated_at = $7
