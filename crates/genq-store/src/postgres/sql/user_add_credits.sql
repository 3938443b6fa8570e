-- $1 id, $2 delta; the balance after.
UPDATE users SET credits = credits + $2 WHERE id = $1 RETURNING credits
