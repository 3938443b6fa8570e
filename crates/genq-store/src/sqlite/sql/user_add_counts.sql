UPDATE users
SET unfinished = unfinished + :unfinished, running = running + :running
WHERE id = :id
