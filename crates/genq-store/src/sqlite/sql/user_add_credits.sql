UPDATE users SET credits = credits + :delta WHERE id = :id RETURNING credits
