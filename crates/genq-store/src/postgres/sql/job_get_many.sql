-- Jobs by id, newest first: one page of a listing whose ids were chosen first.
-- $1 job ids
SELECT * FROM jobs WHERE id = ANY($1) ORDER BY id DESC
