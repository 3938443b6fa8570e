-- :limit users in id order after :after ('' for the first page).
SELECT id, plan, credits, unfinished, running, created_at
FROM users
WHERE id > :after
ORDER BY id
LIMIT :limit
