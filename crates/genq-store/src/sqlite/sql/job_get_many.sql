-- Jobs by id, newest first: one page of a listing whose ids were chosen first.
-- :ids a JSON array of job ids
SELECT * FROM jobs WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id DESC
