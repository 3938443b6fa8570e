-- A user's counts of unfinished and running jobs move with every claim and finish. Updating
-- the user's row there made every claim and finish of one user wait on that one row (and on
-- each other). They append their moves here instead, which never waits; a user's counts are
-- its row's plus the sum of its moves, and the scheduler folds the moves into the rows about
-- once a second (`user_count_moves_fold.sql`). Enqueues, which lock the user's row for its
-- credits anyway, still update the row directly.
CREATE TABLE user_count_moves (
    user_id    text NOT NULL,
    unfinished bigint NOT NULL,
    running    bigint NOT NULL
);
CREATE INDEX user_count_moves_user ON user_count_moves (user_id);
