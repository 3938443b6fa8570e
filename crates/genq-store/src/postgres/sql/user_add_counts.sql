-- $1 id, $2 unfinished delta, $3 running delta
UPDATE users SET unfinished = unfinished + $2, running = running + $3 WHERE id = $1
