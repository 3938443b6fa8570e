-- Webhook deliveries (SPEC §8). The notifier copies events for each configured endpoint from
-- the outbox into `deliveries` (moving the endpoint's cursor, whose row it holds locked, in
-- the same transaction, so each event is copied once), then delivers them at least once, in
-- order per job (or batch): a delivery is claimable only while no earlier one of the same key
-- is still pending, and a batch's event only once no earlier event of its jobs is (`batch_id`).
-- A claim leases it, like a job (SKIP LOCKED), so a process that dies mid-delivery loses
-- nothing.
CREATE TABLE webhook_cursors (
    endpoint text PRIMARY KEY,
    position bigint NOT NULL
);

CREATE TABLE deliveries (
    id           bigserial PRIMARY KEY,
    endpoint     text NOT NULL,
    event_id     bigint NOT NULL,
    position     bigint NOT NULL,
    order_key    text NOT NULL,
    batch_id     text,
    state        text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    first_due_at bigint NOT NULL,
    next_at      bigint NOT NULL,
    lease_token  text,
    lease_until  bigint,
    last_status  integer,
    last_error   text,
    failed_at    bigint,
    last_at      bigint,
    delivered_at bigint,
    UNIQUE (endpoint, event_id)
);
CREATE INDEX deliveries_due ON deliveries (endpoint, position) WHERE state = 'pending';
CREATE INDEX deliveries_key ON deliveries (endpoint, order_key, position) WHERE state = 'pending';
CREATE INDEX deliveries_batch ON deliveries (endpoint, batch_id, position)
    WHERE state = 'pending' AND batch_id IS NOT NULL;
CREATE INDEX deliveries_done ON deliveries (endpoint, last_at) WHERE state <> 'pending';
