-- Jobs that reached a final state since the second :since, per second, state and (failed)
-- error class.
SELECT second, state, class, n FROM finished_seconds WHERE second >= :since
