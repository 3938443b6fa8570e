SELECT state, kind, count(*) FROM jobs GROUP BY state, kind
