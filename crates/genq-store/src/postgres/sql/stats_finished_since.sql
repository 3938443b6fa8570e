SELECT count(*)::bigint AS n FROM jobs WHERE finished_at >= $1
