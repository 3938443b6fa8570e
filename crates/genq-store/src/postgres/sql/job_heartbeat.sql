-- Renew leases: $1 ids, $2 their tokens, $3 lease until, $4 now; the renewed ones.
UPDATE jobs AS j
SET lease_expires_at = $3, updated_at = $4
FROM unnest($1::text[], $2::text[]) AS l (id, token)
WHERE j.id = l.id AND j.state = 'running' AND j.lease_token = l.token
RETURNING j.id, j.lease_token
