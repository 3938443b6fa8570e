-- $1 id, $2 now
UPDATE jobs
SET state = 'canceled',
    fair_tag = NULL,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    error_class = 'canceled',
    error_detail = 'canceled on request',
    finished_at = $2,
    -- A running attempt ends here: appended to the history, as a finish would.
    history = CASE WHEN state <> 'running' THEN history
        ELSE CASE WHEN jsonb_array_length(coalesce(history, '[]')) >= 50
                  THEN history - 0 ELSE coalesce(history, '[]') END
            || jsonb_build_array(jsonb_build_object(
                   'attempt', attempt, 'started_at', attempt_started_at, 'ended_at', $2,
                   'outcome', 'canceled', 'class', 'canceled', 'detail', 'canceled on request'))
        END,
    updated_at = $2
WHERE id = $1 AND state IN ('queued', 'running', 'retrying')
RETURNING *
