SELECT position FROM webhook_cursors WHERE endpoint = :endpoint
