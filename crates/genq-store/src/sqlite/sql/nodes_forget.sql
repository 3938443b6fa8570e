-- Nodes not seen since :before.
DELETE FROM nodes WHERE seen_at < :before
