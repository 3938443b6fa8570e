-- $1 batch ids: lock their rows in id order (after the jobs', after the users': see the lock
-- order in mod.rs) before their counts move.
SELECT id FROM batches WHERE id = ANY($1) ORDER BY id FOR UPDATE
