-- Serialise takers of the slots $1 until the transaction ends, so a count and an insert
-- cannot interleave with another process's.
SELECT pg_advisory_xact_lock(hashtextextended('genq slots ' || $1, 0))
