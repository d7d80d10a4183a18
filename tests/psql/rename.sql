-- ALTER TABLE … RENAME TO, RENAME COLUMN and ALTER INDEX … RENAME TO, with the constraints,
-- sequences and column replica that follow them. tests/tests/psql.rs runs this with psql -X -A
-- -t on DuetDB and on PostgreSQL 15 and requires byte-identical output (rename.out is
-- PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE author (id serial PRIMARY KEY, name text CHECK (name <> ''), born int);
CREATE TABLE book (id int PRIMARY KEY, author_id int REFERENCES author, title text);
CREATE INDEX book_title_idx ON book (title);
INSERT INTO author (name, born) VALUES ('ann', 1950), ('bob', 1960);
INSERT INTO book VALUES (1, 1, 'x'), (2, 2, 'y');
ALTER TABLE author RENAME TO writer;
SELECT * FROM author;
SELECT id, name FROM writer ORDER BY id;
INSERT INTO writer (name, born) VALUES ('cid', 1970) RETURNING id;
INSERT INTO book VALUES (3, 9, 'z');
DELETE FROM writer WHERE id = 1;
ALTER TABLE writer RENAME COLUMN name TO full_name;
INSERT INTO writer (full_name, born) VALUES ('', 1980);
INSERT INTO writer (full_name, born) VALUES ('dee', 1980);
SELECT id, full_name FROM writer WHERE born >= 1960 ORDER BY id;
SET duet.engine = 'column';
SELECT id, full_name, born FROM writer ORDER BY id;
RESET duet.engine;
ALTER TABLE writer RENAME COLUMN nope TO x;
ALTER TABLE writer RENAME COLUMN born TO full_name;
ALTER TABLE writer RENAME TO book;
ALTER INDEX book_title_idx RENAME TO book_title_ix;
SELECT id FROM book WHERE title = 'y';
ALTER TABLE book RENAME COLUMN author_id TO writer_id;
INSERT INTO book VALUES (4, 9, 'w');
INSERT INTO book VALUES (4, 3, 'w');
SELECT * FROM book ORDER BY id;
DROP TABLE book, writer;
