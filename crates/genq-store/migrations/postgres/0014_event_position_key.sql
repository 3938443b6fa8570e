-- Events are found by position (readers follow positions; a delivery keeps its event's), so
-- the position is the primary key and `id` loses its index: one index entry fewer for every
-- event, three for every job. Ids still come from their own sequence (a webhook's stable
-- event id: receivers dedupe by it), so they stay unique without an index. Every event has a
-- position since migration 0011; `events_unpublished` served only processes older than it.
DROP INDEX events_unpublished;
ALTER TABLE events
    DROP CONSTRAINT events_pkey,
    DROP CONSTRAINT events_position_key,
    ADD CONSTRAINT events_pkey PRIMARY KEY (position);
