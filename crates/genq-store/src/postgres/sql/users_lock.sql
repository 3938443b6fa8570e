-- Lock the rows of users $1 in id order (the one lock order every writer uses). Their values
-- are read after the locks are held (users_running.sql; see user_lock.sql).
SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE
