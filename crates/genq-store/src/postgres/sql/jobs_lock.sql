-- Lock the jobs $1 in id order: the order every multi-row write of jobs uses.
SELECT id FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE
