-- New jobs accepted for a user: their cost off the balance, their count onto the unfinished.
UPDATE users
SET credits = credits - :total, unfinished = unfinished + :n
WHERE id = :id
RETURNING credits
