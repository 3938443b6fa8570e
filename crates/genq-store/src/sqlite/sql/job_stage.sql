UPDATE jobs SET fair_tag = :fair_tag WHERE id = :id AND fair_tag IS NULL
