-- $1 id
SELECT * FROM batches WHERE id = $1
