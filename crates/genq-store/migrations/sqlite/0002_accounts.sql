-- Users, their credits ledger, daily usage, and runtime limits (SPEC §5).

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    plan       TEXT NOT NULL,
    -- The sum of the user's ledger entries, kept beside them in every transaction.
    credits    INTEGER NOT NULL CHECK (credits >= 0),
    -- Counters kept in the same transaction as every transition that changes them.
    unfinished INTEGER NOT NULL DEFAULT 0 CHECK (unfinished >= 0),
    running    INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Jobs accepted per user and quota day that have not ended failed or canceled.
CREATE TABLE daily_usage (
    user_id TEXT NOT NULL,
    day     TEXT NOT NULL,
    jobs    INTEGER NOT NULL CHECK (jobs >= 0),
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;

CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL
        CHECK (kind = 'grant' OR kind = 'debit' OR kind = 'refund' OR kind = 'adjust'),
    amount     INTEGER NOT NULL,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    -- A job's debit or refund names the job and its attempt series; a batch is debited once,
    -- for all its jobs, and names the batch.
    job_id     TEXT,
    series     INTEGER,
    batch_id   TEXT,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    CHECK ((job_id IS NULL) = (series IS NULL)),
    CHECK (kind <> 'refund' OR (job_id IS NOT NULL AND batch_id IS NULL)),
    CHECK (kind <> 'debit' OR ((job_id IS NULL) <> (batch_id IS NULL))),
    CHECK (kind IN ('debit', 'refund') OR (job_id IS NULL AND batch_id IS NULL)),
    CHECK (kind <> 'debit' OR amount < 0),
    CHECK (kind <> 'refund' OR amount > 0)
);
-- At most one debit and one refund per job and attempt series (admin retry starts a series).
CREATE UNIQUE INDEX ledger_once ON ledger (job_id, series, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_user ON ledger (user_id, id);

CREATE TABLE limits (
    key        TEXT PRIMARY KEY,
    value      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The attempt series (1, then +1 per admin retry) and the quota day the job counts toward.
ALTER TABLE jobs ADD COLUMN series INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN day TEXT NOT NULL DEFAULT '';

-- The claim reads the user of each candidate (for user_max_running) from the index itself.
DROP INDEX jobs_claimable;
CREATE INDEX jobs_claimable ON jobs (kind, priority DESC, fair_tag, id, user_id)
    WHERE fair_tag IS NOT NULL;
