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
DROP TABLE u;
