-- $1 id
SELECT * FROM jobs WHERE id = $1
