-- $1 batch ids (rows locked), $2 how their counts of unfinished jobs move: the batches now at
-- zero.
UPDATE batches b SET unfinished = b.unfinished + d.delta
FROM unnest($1::text[], $2::int[]) AS d (id, delta)
WHERE b.id = d.id
RETURNING b.id, b.unfinished = 0 AS done
