-- ALTER TABLE … ALTER COLUMN. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB and on
-- PostgreSQL 15 and requires byte-identical output (alter.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE u (id int PRIMARY KEY, name varchar(5), note text, n int);
INSERT INTO u VALUES (1, 'abc', NULL, 1), (2, 'abcde', 'x', NULL);
ALTER TABLE u ALTER COLUMN name TYPE varchar(3);
ALTER TABLE u ALTER COLUMN name TYPE varchar(150);
INSERT INTO u VALUES (3, 'a much longer name', 'y', 3);
ALTER TABLE u ALTER COLUMN note SET NOT NULL;
ALTER TABLE u ALTER COLUMN name SET NOT NULL;
INSERT INTO u VALUES (4, NULL, 'z', 4);
ALTER TABLE u ALTER COLUMN name DROP NOT NULL;
INSERT INTO u VALUES (4, NULL, 'z', 4);
ALTER TABLE u ALTER COLUMN id DROP NOT NULL;
ALTER TABLE u ALTER COLUMN n SET DEFAULT 42;
INSERT INTO u (id, name) VALUES (5, 'e');
ALTER TABLE u ALTER COLUMN n DROP DEFAULT;
INSERT INTO u (id, name) VALUES (6, 'f');
SET duet.engine = 'column';
SELECT * FROM u ORDER BY id;
RESET duet.engine;
-- DROP COLUMN: its indexes and checks go with it, later columns move up
CREATE TABLE w (id int PRIMARY KEY, a text, b int CHECK (b > 0), c serial, d int, e text UNIQUE);
CREATE INDEX w_b ON w (b);
CREATE INDEX w_d ON w (d);
INSERT INTO w (id, a, b, d, e) VALUES (1, 'one', 1, 10, 'x'), (2, 'two', 2, 20, 'y');
ALTER TABLE w DROP COLUMN b;
INSERT INTO w (id, a, d, e) VALUES (3, 'three', 30, 'z');
INSERT INTO w (id, a, d, e) VALUES (4, 'four', 40, 'z');
SELECT * FROM w ORDER BY id;
SELECT id FROM w WHERE d = 20;
ALTER TABLE w DROP COLUMN c, DROP COLUMN IF EXISTS nope;
ALTER TABLE w DROP COLUMN nope;
SELECT * FROM w WHERE e = 'y';
SET duet.engine = 'column';
SELECT * FROM w ORDER BY id;
RESET duet.engine;
CREATE TABLE wc (id int PRIMARY KEY, w_e text REFERENCES w (e));
INSERT INTO wc VALUES (1, 'x');
ALTER TABLE w DROP COLUMN e;
ALTER TABLE w DROP COLUMN e CASCADE;
INSERT INTO wc VALUES (2, 'nope');
ALTER TABLE wc DROP COLUMN w_e;
SELECT * FROM wc ORDER BY id;
-- columns that depend on a grouped primary key may be selected
SELECT w.id, w.a, count(wc.id) FROM w LEFT JOIN wc ON wc.id = w.id GROUP BY w.id ORDER BY w.id;
DROP TABLE wc, w;
DROP TABLE u;
