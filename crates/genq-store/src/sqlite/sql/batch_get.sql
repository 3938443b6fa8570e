SELECT * FROM batches WHERE id = :id
