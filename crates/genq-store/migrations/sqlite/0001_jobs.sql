-- Jobs, batches and the fair-queueing clock.
-- Times are integer microseconds since the Unix epoch (UTC).
-- Lists of three or more values are written as OR chains, not IN (...): SQLite evaluates an IN
-- list through a temporary table, and these checks run on every write of a job.

CREATE TABLE batches (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    idempotency_key TEXT,
    total           INTEGER NOT NULL CHECK (total > 0),
    created_at      INTEGER NOT NULL
);

CREATE UNIQUE INDEX batches_idempotency ON batches (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    batch_id         TEXT REFERENCES batches (id),
    state            TEXT NOT NULL
        CHECK (state = 'queued' OR state = 'running' OR state = 'retrying'
               OR state = 'succeeded' OR state = 'failed' OR state = 'canceled'),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
    retries_used     INTEGER NOT NULL DEFAULT 0 CHECK (retries_used >= 0),
    rate_limit_waits INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit_waits >= 0),
    payload          TEXT NOT NULL,
    result           TEXT,
    error_class      TEXT,
    error_detail     TEXT,
    cost             INTEGER NOT NULL DEFAULT 0 CHECK (cost >= 0),
    idempotency_key  TEXT,
    run_at           INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL,
    -- Position in the fair queue; set exactly while the job is claimable and due.
    fair_tag         INTEGER,
    lease_token      TEXT,
    lease_node       TEXT,
    lease_worker     TEXT,
    lease_expires_at INTEGER,

    -- A running job holds a lease, and only a running job does.
    CHECK ((state = 'running') = (lease_token IS NOT NULL)),
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((lease_token IS NULL) = (lease_node IS NULL)),
    -- A finished job has finished_at, and only a finished job does.
    CHECK ((state = 'succeeded' OR state = 'failed' OR state = 'canceled')
           = (finished_at IS NOT NULL)),
    -- Only claimable jobs sit in the fair queue.
    CHECK (fair_tag IS NULL OR state IN ('queued', 'retrying')),
    -- A succeeded job has a result; a failed or canceled one says why.
    CHECK ((state = 'succeeded') = (result IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'canceled') OR error_class IS NOT NULL),
    -- Once started, a job has a start time and has used an attempt.
    CHECK ((attempt = 0) = (started_at IS NULL))
);

-- Hot queries name their index (INDEXED BY): with no statistics the planner may otherwise pick
-- jobs_state_kind and scan every queued job.
-- The claim: per kind, highest priority, then the fair tag, then acceptance order.
CREATE INDEX jobs_claimable ON jobs (kind, priority DESC, fair_tag, id)
    WHERE fair_tag IS NOT NULL;
-- The scheduler: delayed and retrying jobs that are not claimable yet, by due time.
CREATE INDEX jobs_due ON jobs (run_at)
    WHERE fair_tag IS NULL AND state IN ('queued', 'retrying');
-- The rescuer: running jobs by lease expiry.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_user ON jobs (user_id, id);
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_state_kind ON jobs (state, kind);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Start-time fair queueing (see sqlite/mod.rs): the virtual time is the largest tag claimed so
-- far; each user's next job is tagged no earlier than it and after that user's previous job.
CREATE TABLE fair_clock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    vtime INTEGER NOT NULL
);
INSERT INTO fair_clock (id, vtime) VALUES (1, 0);

CREATE TABLE fair_users (
    user_id  TEXT PRIMARY KEY,
    next_tag INTEGER NOT NULL
) WITHOUT ROWID;
