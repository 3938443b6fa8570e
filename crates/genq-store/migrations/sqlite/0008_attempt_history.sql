-- Each job keeps the attempts that ended (the dashboard's job page shows them): when each
-- started and ended, the state it left the job in, and the class and detail of a failure. A
-- JSON array, newest last, at most 50 entries (genq_core::job::HISTORY_KEPT), appended by the
-- statement that ends the attempt (job_finish.sql, job_cancel.sql): no extra row or index.
-- Times are microseconds, as in every column.
ALTER TABLE jobs ADD COLUMN attempt_started_at INTEGER;
ALTER TABLE jobs ADD COLUMN history TEXT;
