-- $1 id, $2 jobs accepted, $3 their total cost; the balance after.
UPDATE users SET credits = credits - $3, unfinished = unfinished + $2 WHERE id = $1 RETURNING credits
