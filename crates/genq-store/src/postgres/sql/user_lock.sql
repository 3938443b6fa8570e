-- Lock a user's row; whether it exists. Its values are read after, by user_get.sql: a
-- statement that waited for the lock would see the row as the fold left it but the count
-- moves as they were before the fold, and count them twice.
SELECT id FROM users WHERE id = $1 FOR UPDATE
