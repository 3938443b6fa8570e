-- Reserve consecutive fair-queue tags for users $1 (distinct), $2 tags each, no earlier than
-- the virtual time; each user's next tag after them (the first is that minus its count). Rows
-- are written in user-id order, the order every writer locks users in.
INSERT INTO fair_users AS f (user_id, next_tag)
SELECT r.user_id, c.vtime + r.n
FROM unnest($1::text[], $2::bigint[]) AS r (user_id, n), fair_clock AS c
WHERE c.id = 1
ORDER BY r.user_id
ON CONFLICT (user_id) DO UPDATE
SET next_tag = greatest(f.next_tag + excluded.next_tag - (SELECT vtime FROM fair_clock WHERE id = 1),
                        excluded.next_tag)
RETURNING user_id, next_tag
