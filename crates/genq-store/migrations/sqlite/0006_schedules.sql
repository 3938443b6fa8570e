-- `[[schedules]]`: how far each schedule is covered (its last slot run, or when it was first
-- seen), whether it is paused, and what its last slot made. One job per slot comes from the
-- job's idempotency key (`schedule:<name>:<slot>`), not from this table.
CREATE TABLE schedules (
    name          TEXT PRIMARY KEY,
    paused        INTEGER NOT NULL DEFAULT 0,
    covered_until INTEGER NOT NULL,
    last_slot     INTEGER,
    last_job_id   TEXT,
    last_error    TEXT,
    updated_at    INTEGER NOT NULL
);
