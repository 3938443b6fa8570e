-- Whose each job is, written once. A claim and a finish are updates that change indexed
-- columns (state, lease, fair tag), so each new version of a job's row gets an entry in every
-- index on `jobs`: an index by user and one by batch there cost two entries per version, six
-- per job. Here they cost two per job. `jobs` keeps its user_id and batch_id columns; rows
-- here are inserted with the job (job_insert_many.sql) and deleted with it (job_prune*.sql).
CREATE TABLE job_owners (
    id       text NOT NULL,
    user_id  text NOT NULL,
    batch_id text
);
INSERT INTO job_owners (id, user_id, batch_id) SELECT id, user_id, batch_id FROM jobs;
CREATE INDEX job_owners_user ON job_owners (user_id, id);
CREATE INDEX job_owners_batch ON job_owners (batch_id, id) WHERE batch_id IS NOT NULL;
DROP INDEX jobs_user;
DROP INDEX jobs_batch;
ANALYZE job_owners;
