UPDATE batches SET completed_at = :now WHERE id = :id AND completed_at IS NULL
