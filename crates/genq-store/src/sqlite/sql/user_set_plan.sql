UPDATE users SET plan = :plan WHERE id = :id
