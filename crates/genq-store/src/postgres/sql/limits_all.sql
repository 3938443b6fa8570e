SELECT key, value FROM limits
