-- $1 batch id
SELECT id FROM job_owners WHERE batch_id = $1 ORDER BY id
