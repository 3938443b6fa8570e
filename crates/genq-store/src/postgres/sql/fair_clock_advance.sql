-- $1: the largest tag just claimed. Only a larger one moves (and locks) the clock row.
UPDATE fair_clock SET vtime = $1 WHERE id = 1 AND vtime < $1
