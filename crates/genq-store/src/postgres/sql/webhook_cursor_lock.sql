-- $1 endpoint: its cursor, held until the copy commits (one copier at a time per endpoint).
SELECT position FROM webhook_cursors WHERE endpoint = $1 FOR UPDATE
