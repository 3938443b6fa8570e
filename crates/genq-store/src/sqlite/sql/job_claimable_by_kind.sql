SELECT id, priority, fair_tag, user_id
FROM jobs
WHERE kind = :kind AND fair_tag IS NOT NULL
ORDER BY priority DESC, fair_tag, id
LIMIT :limit
