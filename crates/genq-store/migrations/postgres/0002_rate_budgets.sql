-- Provider rate budgets shared by every process (see genq-engine providers/pace.rs): one row
-- per budget, its GCRA "theoretical arrival time" in microseconds of the database's clock.
CREATE TABLE rate_budgets (
    name text PRIMARY KEY,
    tat  bigint NOT NULL
);
