-- Room on each page of jobs for a row's next version: a claim and a finish each write a new
-- version, and one that has to go to another page first writes a lock record for the old one
-- (about two extra WAL records per job at fillfactor 100). Pages written from now on keep
-- the room; existing ones get it as they are rewritten.
ALTER TABLE jobs SET (fillfactor = 50);
