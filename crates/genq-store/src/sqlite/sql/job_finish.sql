-- A transition out of `running`, fenced: it applies only while the attempt still holds its
-- lease (and, for the rescuer, only if that lease has expired).
UPDATE jobs
SET state = :state,
    result = :result,
    -- A success clears the last failure; a release (no error given) keeps it.
    error_class = CASE WHEN :state = 'succeeded' THEN NULL ELSE coalesce(:error_class, error_class) END,
    error_detail = CASE WHEN :state = 'succeeded' THEN NULL ELSE coalesce(:error_detail, error_detail) END,
    run_at = coalesce(:run_at, run_at),
    fair_tag = :fair_tag,
    retries_used = retries_used + :uses_retry,
    rate_limit_waits = rate_limit_waits + :rate_limit_wait,
    finished_at = :finished_at,
    -- An attempt that did not succeed is appended to the history (the oldest dropped beyond
    -- 50). A success is not: the job's own attempt_started_at and finished_at tell it, and
    -- the common path stays as cheap as before.
    history = CASE WHEN :state = 'succeeded' THEN history ELSE json_insert(
        CASE WHEN json_array_length(coalesce(history, '[]')) >= 50
             THEN json_remove(history, '$[0]') ELSE coalesce(history, '[]') END,
        '$[#]',
        json_object('attempt', attempt, 'started_at', attempt_started_at, 'ended_at', :now,
                    'outcome', :state, 'class', :error_class, 'detail', :error_detail)) END,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    updated_at = :now
WHERE id = :id
  AND state = 'running'
  AND lease_token = :token
  AND (:expired_before IS NULL OR lease_expires_at < :expired_before)
