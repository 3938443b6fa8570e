-- Each job keeps the attempts that ended (see migrations/sqlite/0008_attempt_history.sql): a
-- jsonb array appended by the statement that ends the attempt, so no row or index is added.
ALTER TABLE jobs ADD COLUMN attempt_started_at bigint;
ALTER TABLE jobs ADD COLUMN history jsonb;
