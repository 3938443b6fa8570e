SELECT state, kind, count(*)::bigint AS n FROM jobs GROUP BY state, kind
