-- $1 endpoint, $2 position
UPDATE webhook_cursors SET position = $2 WHERE endpoint = $1
