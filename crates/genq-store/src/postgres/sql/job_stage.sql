-- $1 id, $2 fair tag
UPDATE jobs SET fair_tag = $2 WHERE id = $1 AND fair_tag IS NULL
