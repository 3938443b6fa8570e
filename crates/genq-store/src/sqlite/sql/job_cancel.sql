UPDATE jobs
SET state = 'canceled',
    fair_tag = NULL,
    lease_token = NULL,
    lease_node = NULL,
    lease_worker = NULL,
    lease_expires_at = NULL,
    error_class = 'canceled',
    error_detail = 'canceled on request',
    finished_at = :now,
    -- A running attempt ends here: appended to the history, as a finish would.
    history = CASE WHEN state <> 'running' THEN history
        ELSE json_insert(
            CASE WHEN json_array_length(coalesce(history, '[]')) >= 50
                 THEN json_remove(history, '$[0]') ELSE coalesce(history, '[]') END,
            '$[#]',
            json_object('attempt', attempt, 'started_at', attempt_started_at, 'ended_at', :now,
                        'outcome', 'canceled', 'class', 'canceled',
                        'detail', 'canceled on request'))
        END,
    updated_at = :now
WHERE id = :id AND (state = 'queued' OR state = 'running' OR state = 'retrying')
RETURNING *
