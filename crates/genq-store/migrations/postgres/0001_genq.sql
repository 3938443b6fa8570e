-- genq on PostgreSQL: the same tables, states and rules as on SQLite (see
-- migrations/sqlite/*.sql for the reasoning behind each), in one migration.
-- Times are bigint microseconds since the Unix epoch (UTC), as on SQLite.

CREATE TABLE batches (
    id              text PRIMARY KEY,
    user_id         text NOT NULL,
    kind            text NOT NULL,
    idempotency_key text,
    total           integer NOT NULL CHECK (total > 0),
    created_at      bigint NOT NULL
);
CREATE UNIQUE INDEX batches_idempotency ON batches (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE jobs (
    id               text PRIMARY KEY,
    kind             text NOT NULL,
    user_id          text NOT NULL,
    batch_id         text REFERENCES batches (id),
    state            text NOT NULL
        CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled')),
    priority         integer NOT NULL DEFAULT 0,
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_retries      integer NOT NULL CHECK (max_retries >= 0),
    retries_used     integer NOT NULL DEFAULT 0 CHECK (retries_used >= 0),
    rate_limit_waits integer NOT NULL DEFAULT 0 CHECK (rate_limit_waits >= 0),
    payload          jsonb NOT NULL,
    result           jsonb,
    error_class      text,
    error_detail     text,
    cost             bigint NOT NULL DEFAULT 0 CHECK (cost >= 0),
    idempotency_key  text,
    run_at           bigint NOT NULL,
    created_at       bigint NOT NULL,
    started_at       bigint,
    finished_at      bigint,
    updated_at       bigint NOT NULL,
    -- Position in the fair queue; set exactly while the job is claimable and due.
    fair_tag         bigint,
    lease_token      text,
    lease_node       text,
    lease_worker     text,
    lease_expires_at bigint,
    series           integer NOT NULL DEFAULT 1,
    day              text NOT NULL,
    provider_task_id text,
    provider_task_at bigint,

    CHECK ((state = 'running') = (lease_token IS NOT NULL)),
    CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((lease_token IS NULL) = (lease_node IS NULL)),
    CHECK ((state IN ('succeeded', 'failed', 'canceled')) = (finished_at IS NOT NULL)),
    CHECK (fair_tag IS NULL OR state IN ('queued', 'retrying')),
    CHECK ((state = 'succeeded') = (result IS NOT NULL)),
    CHECK (state NOT IN ('failed', 'canceled') OR error_class IS NOT NULL),
    CHECK ((attempt = 0) = (started_at IS NULL))
);

-- The claim, per kind: highest priority, then the fair tag, then acceptance order.
CREATE INDEX jobs_claimable ON jobs (kind, priority DESC, fair_tag, id) INCLUDE (user_id)
    WHERE fair_tag IS NOT NULL;
-- The scheduler: delayed and retrying jobs that are not claimable yet, by due time.
CREATE INDEX jobs_due ON jobs (run_at) WHERE fair_tag IS NULL AND state IN ('queued', 'retrying');
-- The rescuer: running jobs by lease expiry; and due polls of parked task jobs.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_polls ON jobs (lease_expires_at)
    WHERE state = 'running' AND provider_task_id IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency ON jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_user ON jobs (user_id, id);
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_state_kind ON jobs (state, kind);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE fair_clock (
    id    integer PRIMARY KEY CHECK (id = 1),
    vtime bigint NOT NULL
);
INSERT INTO fair_clock (id, vtime) VALUES (1, 0);

CREATE TABLE fair_users (
    user_id  text PRIMARY KEY,
    next_tag bigint NOT NULL
);

CREATE TABLE users (
    id         text PRIMARY KEY,
    plan       text NOT NULL,
    credits    bigint NOT NULL CHECK (credits >= 0),
    unfinished bigint NOT NULL DEFAULT 0 CHECK (unfinished >= 0),
    running    bigint NOT NULL DEFAULT 0 CHECK (running >= 0),
    created_at bigint NOT NULL
);

CREATE TABLE daily_usage (
    user_id text NOT NULL,
    day     text NOT NULL,
    jobs    bigint NOT NULL CHECK (jobs >= 0),
    PRIMARY KEY (user_id, day)
);

CREATE TABLE ledger (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('grant', 'debit', 'refund', 'adjust')),
    amount     bigint NOT NULL,
    balance    bigint NOT NULL CHECK (balance >= 0),
    job_id     text,
    series     integer,
    batch_id   text,
    reason     text NOT NULL,
    created_at bigint NOT NULL,
    CHECK ((job_id IS NULL) = (series IS NULL)),
    CHECK (kind <> 'refund' OR (job_id IS NOT NULL AND batch_id IS NULL)),
    CHECK (kind <> 'debit' OR ((job_id IS NULL) <> (batch_id IS NULL))),
    CHECK (kind IN ('debit', 'refund') OR (job_id IS NULL AND batch_id IS NULL)),
    CHECK (kind <> 'debit' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0)
);
CREATE UNIQUE INDEX ledger_once ON ledger (job_id, series, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE TABLE limits (
    key        text PRIMARY KEY,
    value      bigint NOT NULL,
    updated_at bigint NOT NULL
);
