-- $1: nodes not seen since then.
DELETE FROM nodes WHERE seen_at < $1
