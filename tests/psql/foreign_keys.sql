-- FOREIGN KEY constraints. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB and on
-- PostgreSQL 15 and requires byte-identical output (foreign_keys.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE author (id int PRIMARY KEY, name text UNIQUE);
CREATE TABLE book (id int PRIMARY KEY, author_id int REFERENCES author, title text);
INSERT INTO author VALUES (1, 'ann'), (2, 'bob');
INSERT INTO book VALUES (10, 1, 'a'), (11, 1, 'b'), (12, NULL, 'orphan');
-- no such author
INSERT INTO book VALUES (13, 3, 'c');
UPDATE book SET author_id = 4 WHERE id = 10;
UPDATE book SET title = 'a2' WHERE id = 10;
-- still referenced (NO ACTION)
DELETE FROM author WHERE id = 1;
UPDATE author SET id = 5 WHERE id = 1;
-- a key that is not referenced may go
DELETE FROM author WHERE id = 2;
-- a parent and its child in one transaction, in either order
BEGIN;
INSERT INTO author VALUES (3, 'cid');
INSERT INTO book VALUES (14, 3, 'd');
COMMIT;
BEGIN;
DELETE FROM book WHERE author_id = 3;
DELETE FROM author WHERE id = 3;
COMMIT;
SELECT id, author_id, title FROM book ORDER BY id;
SELECT id, name FROM author ORDER BY id;
-- referencing a unique column rather than the key
CREATE TABLE review (id int PRIMARY KEY, author_name text REFERENCES author (name) ON UPDATE CASCADE ON DELETE SET NULL);
INSERT INTO review VALUES (1, 'ann');
INSERT INTO review VALUES (2, 'zed');
UPDATE author SET name = 'anne' WHERE id = 1;
SELECT * FROM review;
DELETE FROM book;
DELETE FROM author WHERE id = 1;
SELECT * FROM review;
-- composite keys and CASCADE through two levels
CREATE TABLE orders (w int, o int, note text, PRIMARY KEY (w, o));
CREATE TABLE lines (w int, o int, n int, PRIMARY KEY (w, o, n), CONSTRAINT lines_order FOREIGN KEY (w, o) REFERENCES orders ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE notes (w int, o int, n int, txt text, FOREIGN KEY (w, o, n) REFERENCES lines ON DELETE CASCADE);
INSERT INTO orders VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z');
INSERT INTO lines VALUES (1, 1, 1), (1, 1, 2), (1, 2, 1), (2, 1, 1);
INSERT INTO lines VALUES (2, 2, 1);
INSERT INTO notes VALUES (1, 1, 2, 'keep?'), (2, 1, 1, 'keep');
DELETE FROM orders WHERE w = 1 AND o = 1;
SELECT * FROM lines ORDER BY 1, 2, 3;
SELECT * FROM notes ORDER BY 1, 2, 3;
UPDATE orders SET o = 7 WHERE w = 1;
SELECT * FROM lines ORDER BY 1, 2, 3;
-- a child of a cascaded row that does not cascade stops the statement
UPDATE orders SET o = 9 WHERE w = 2;
SELECT * FROM orders ORDER BY 1, 2;
-- RESTRICT, SET DEFAULT
CREATE TABLE team (id int PRIMARY KEY);
INSERT INTO team VALUES (0), (1), (2);
CREATE TABLE player (id int PRIMARY KEY, team_id int DEFAULT 0 REFERENCES team ON DELETE SET DEFAULT ON UPDATE RESTRICT);
INSERT INTO player VALUES (1, 1), (2, 2), (3, 2);
DELETE FROM team WHERE id = 2;
SELECT * FROM player ORDER BY id;
UPDATE team SET id = 5 WHERE id = 1;
DELETE FROM team WHERE id = 0;
-- self-reference
CREATE TABLE emp (id int PRIMARY KEY, boss int REFERENCES emp ON DELETE CASCADE);
INSERT INTO emp VALUES (1, NULL), (2, 1), (3, 2), (4, 1);
INSERT INTO emp VALUES (5, 6);
DELETE FROM emp WHERE id = 2;
SELECT * FROM emp ORDER BY id;
-- deferred checks wait for COMMIT
CREATE TABLE p (id int PRIMARY KEY);
CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p DEFERRABLE INITIALLY DEFERRED);
BEGIN;
INSERT INTO c VALUES (1, 1);
INSERT INTO p VALUES (1);
COMMIT;
BEGIN;
INSERT INTO c VALUES (2, 2);
COMMIT;
BEGIN;
DELETE FROM p WHERE id = 1;
INSERT INTO p VALUES (1);
COMMIT;
BEGIN;
INSERT INTO c VALUES (3, 3);
SET CONSTRAINTS ALL IMMEDIATE;
ROLLBACK;
BEGIN;
SET CONSTRAINTS c_p_id_fkey IMMEDIATE;
INSERT INTO c VALUES (3, 3);
ROLLBACK;
INSERT INTO c VALUES (3, 3);
SELECT * FROM c ORDER BY id;
-- ALTER TABLE adds and drops them; existing rows are checked
CREATE TABLE loose (id int, p_id int);
INSERT INTO loose VALUES (1, 1), (2, 9);
ALTER TABLE loose ADD CONSTRAINT loose_p FOREIGN KEY (p_id) REFERENCES p;
DELETE FROM loose WHERE id = 2;
ALTER TABLE loose ADD CONSTRAINT loose_p FOREIGN KEY (p_id) REFERENCES p;
INSERT INTO loose VALUES (3, 9);
ALTER TABLE loose DROP CONSTRAINT loose_p;
INSERT INTO loose VALUES (3, 9);
ALTER TABLE loose ADD COLUMN q int REFERENCES p;
INSERT INTO loose VALUES (4, 1, 2);
INSERT INTO loose VALUES (4, 1, 1);
-- COPY checks too
COPY c FROM STDIN;
4	7
\.
COPY c FROM STDIN;
4	1
\.
SELECT count(*) FROM c;
-- definitions that cannot work
CREATE TABLE bad1 (a int REFERENCES nowhere);
CREATE TABLE bad2 (a text REFERENCES p);
CREATE TABLE bad3 (a int REFERENCES book (title));
CREATE TABLE bad4 (a int, b int, FOREIGN KEY (a, b) REFERENCES p);
CREATE TABLE bad5 (a int REFERENCES p (nope));
-- dropping and emptying referenced tables
DROP TABLE p;
TRUNCATE p;
TRUNCATE p, c, loose;
DROP TABLE p CASCADE;
INSERT INTO c VALUES (9, 99);
DROP TABLE author, book, review;
DROP TABLE team, player, emp, notes, lines, orders, c, loose;
