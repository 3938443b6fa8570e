-- Running counts of the users $1, locked in id order (the one lock order every writer uses).
SELECT id, running FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE
