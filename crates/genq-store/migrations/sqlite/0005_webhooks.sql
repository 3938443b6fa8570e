-- Webhook deliveries (SPEC §8). The notifier copies events for each configured endpoint from
-- the outbox into `deliveries` (moving the endpoint's cursor in the same transaction, so each
-- event is copied once), then delivers them at least once, in order per job (or batch): a
-- delivery is claimable only while no earlier one of the same key is still pending, and a
-- batch's event only once no earlier event of its jobs is (`batch_id`). A claim leases it, like a job, so a process that dies mid-delivery
-- loses nothing.
CREATE TABLE webhook_cursors (
    endpoint TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint     TEXT NOT NULL,
    event_id     INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    order_key    TEXT NOT NULL,
    batch_id     TEXT,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    first_due_at INTEGER NOT NULL,
    next_at      INTEGER NOT NULL,
    lease_token  TEXT,
    lease_until  INTEGER,
    last_status  INTEGER,
    last_error   TEXT,
    failed_at    INTEGER,
    last_at      INTEGER,
    delivered_at INTEGER,
    UNIQUE (endpoint, event_id)
);
CREATE INDEX deliveries_due ON deliveries (endpoint, position) WHERE state = 'pending';
CREATE INDEX deliveries_key ON deliveries (endpoint, order_key, position) WHERE state = 'pending';
CREATE INDEX deliveries_batch ON deliveries (endpoint, batch_id, position)
    WHERE state = 'pending' AND batch_id IS NOT NULL;
CREATE INDEX deliveries_done ON deliveries (endpoint, last_at) WHERE state <> 'pending';
