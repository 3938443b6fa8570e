-- `[[schedules]]`: how far each schedule is covered (its last slot run, or when it was first
-- seen), whether it is paused, and what its last slot made. One job per slot comes from the
-- job's idempotency key (`schedule:<name>:<slot>`), not from this table.
CREATE TABLE schedules (
    name          text PRIMARY KEY,
    paused        boolean NOT NULL DEFAULT false,
    covered_until bigint NOT NULL,
    last_slot     bigint,
    last_job_id   text,
    last_error    text,
    updated_at    bigint NOT NULL
);
