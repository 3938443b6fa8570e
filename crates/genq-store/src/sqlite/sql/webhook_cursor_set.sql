UPDATE webhook_cursors SET position = :position WHERE endpoint = :endpoint
