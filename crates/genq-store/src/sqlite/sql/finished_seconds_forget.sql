-- Tallies of seconds more than two hours before ?1.
DELETE FROM finished_seconds WHERE second < ?1 - 7200
