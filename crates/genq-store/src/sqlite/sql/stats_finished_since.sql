SELECT count(*) FROM jobs WHERE finished_at >= :since
