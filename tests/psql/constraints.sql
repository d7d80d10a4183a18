-- CHECK constraints. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB and on
-- PostgreSQL 15 and requires byte-identical output (constraints.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE acct (id int PRIMARY KEY, balance numeric(10,2) CHECK (balance >= 0), flag smallint NOT NULL CHECK (flag >= 0), lo int, hi int, CONSTRAINT lo_below_hi CHECK (lo <= hi));
INSERT INTO acct VALUES (1, 10, 0, 1, 2);
INSERT INTO acct VALUES (2, -1, 0, 1, 2);
INSERT INTO acct VALUES (3, 5, -1, 1, 2);
INSERT INTO acct VALUES (4, 5, 1, 3, 2);
INSERT INTO acct VALUES (5, NULL, 1, NULL, 2);
UPDATE acct SET balance = balance - 20 WHERE id = 1;
UPDATE acct SET balance = balance - 5 WHERE id = 1;
SELECT * FROM acct ORDER BY id;
ALTER TABLE acct ADD CONSTRAINT small_balance CHECK (balance < 3);
ALTER TABLE acct ADD CONSTRAINT small_balance CHECK (balance < 100);
INSERT INTO acct VALUES (6, 200, 1, 1, 1);
ALTER TABLE acct DROP CONSTRAINT small_balance;
INSERT INTO acct VALUES (6, 200, 1, 1, 1);
ALTER TABLE acct DROP CONSTRAINT nope;
ALTER TABLE acct DROP CONSTRAINT IF EXISTS nope;
COPY acct FROM STDIN;
7	1	1	5	1
\.
SELECT count(*) FROM acct;
CREATE TABLE bad (a int CHECK (b > 0));
DROP TABLE acct;
-- RENAME CONSTRAINT: a CHECK and a foreign key keep working under their new names
CREATE TABLE rn_parent (id int PRIMARY KEY);
CREATE TABLE rn (a int CONSTRAINT rn_pos CHECK (a > 0), p int CONSTRAINT rn_fk REFERENCES rn_parent (id));
ALTER TABLE rn RENAME CONSTRAINT rn_pos TO rn_positive;
ALTER TABLE rn RENAME CONSTRAINT rn_fk TO rn_parent_fk;
ALTER TABLE rn RENAME CONSTRAINT rn_pos TO rn_other;
ALTER TABLE rn RENAME CONSTRAINT rn_positive TO rn_parent_fk;
INSERT INTO rn VALUES (-1, NULL);
INSERT INTO rn VALUES (1, 5);
SELECT conname FROM pg_constraint WHERE conrelid = 'rn'::regclass ORDER BY 1;
DROP TABLE rn;
DROP TABLE rn_parent;
