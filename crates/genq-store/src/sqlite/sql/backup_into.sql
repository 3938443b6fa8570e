-- ?1 the copy's path: the whole database as of one read transaction.
VACUUM INTO ?1
