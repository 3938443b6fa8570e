-- Make delayed and retrying jobs claimable: $1 ids (locked by job_due.sql), $2 their fair tags.
UPDATE jobs AS j
SET fair_tag = s.tag
FROM unnest($1::text[], $2::bigint[]) AS s (id, tag)
WHERE j.id = s.id AND j.fair_tag IS NULL
