-- Transitions out of `running` for many jobs in one statement, each fenced by its lease token
-- (and, for the rescuer, by expiry); the positions (1-based) of the entries it applied. If one
-- job appears twice, the first entry whose fence holds applies: chosen by a plain read, then
-- the update checks the fence again on each row it locks, and on a row a concurrent writer
-- changed it checks the committed version, so a stale choice applies nothing. No locking read
-- first: it wrote a lock to the row and the WAL just before the update wrote the row again
-- (a quarter of this statement's time). The update locks rows in `chosen`'s order, by id, the
-- order every multi-row write of jobs uses: the plan is a nested loop driven by `chosen`
-- (`EXPLAIN` under generic and custom plans, 100 and 1,000 entries); should another plan lock
-- out of order, a deadlock is retried like any other. The fence names no state: only a running job has a token (a CHECK),
-- and a state here let the planner drive the update from the leases index, out of id order.
-- Arrays, one element per entry:
-- $1 id, $2 token, $3 expired_before, $4 state, $5 result, $6 error_class, $7 error_detail,
-- $8 run_at, $9 fair_tag, $10 uses_retry, $11 rate_limit_wait, $12 finished_at, $13 now
WITH f AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::jsonb[], $6::text[],
                $7::text[], $8::bigint[], $9::bigint[], $10::int[], $11::int[], $12::bigint[],
                $13::bigint[])
      WITH ORDINALITY
      AS f (id, token, expired_before, state, result, error_class, error_detail, run_at,
            fair_tag, uses_retry, rate_limit_wait, finished_at, now, ord)
),
-- Each entry's values ride along (not joined back to f by position: with f a CTE, that join
-- is a nested loop, quadratic in the batch).
chosen AS (
    SELECT DISTINCT ON (f.id) f.*
    FROM f
    JOIN jobs AS j ON j.id = f.id
    WHERE j.lease_token = f.token
      AND (f.expired_before IS NULL OR j.lease_expires_at < f.expired_before)
    ORDER BY f.id, f.ord
)
UPDATE jobs AS j
SET state = f.state,
    result = f.result,
    -- A success clears the last failure; a release (no error given) keeps it.
    error_class = CASE WHEN f.state = 'succeeded' THEN NULL ELSE coalesce(f.error_class, j.error_class) END,
    error_detail = CASE WHEN f.state = 'succeeded' THEN NULL ELSE coalesce(f.error_detail, j.error_detail) END,
    run_at = coalesce(f.run_at, j.run_at),
    fair_tag = f.fair_tag,
    retries_used = j.retries_used + f.uses_retry,
    rate_limit_waits = j.rate_limit_waits + f.rate_limit_wait,
    finished_at = f.finished_at,
    -- An attempt that did not succeed is appended to the history (the oldest dropped beyond
    -- 50); a success is told by the job's own attempt_started_at and finished_at.
    history = CASE WHEN f.state = 'succeeded' THEN j.history ELSE
        CASE WHEN jsonb_array_length(coalesce(j.history, '[]')) >= 50
             THEN j.history - 0 ELSE coalesce(j.history, '[]') END
        || jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'started_at', j.attempt_started_at, 'ended_at', f.now,
               'outcome', f.state, 'class', f.error_class, 'detail', f.error_detail)) END,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    updated_at = f.now
FROM chosen AS f
WHERE j.id = f.id
  AND j.lease_token = f.token
  AND (f.expired_before IS NULL OR j.lease_expires_at < f.expired_before)
RETURNING f.ord
