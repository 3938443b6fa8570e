-- A provider's max_concurrent, shared by every process: one row per request (or task) in
-- flight. A holder that dies frees its slot when the slot expires.
CREATE TABLE concurrency_slots (
    name       text NOT NULL,
    holder     text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (name, holder)
);
