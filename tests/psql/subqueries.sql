-- Correlated subqueries: scalar ones without an aggregate, and the shapes DataFusion does
-- not decorrelate (evaluated per outer row). tests/tests/psql.rs runs this with psql
-- -X -A -t on DuetDB and on PostgreSQL 15 and requires byte-identical output (subqueries.out is
-- PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE p1 (id int, name text);
CREATE TABLE c1 (id int PRIMARY KEY, pid int);
INSERT INTO p1 VALUES (1, 'one'), (2, 'two'), (3, 'three'), (3, 'drei');
INSERT INTO c1 VALUES (10, 1), (11, 2), (12, NULL), (13, 9);
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id = c.pid) FROM c1 c ORDER BY c.id;
SELECT c.id FROM c1 c WHERE (SELECT p.name FROM p1 p WHERE p.id = c.pid) LIKE 't%' ORDER BY 1;
SELECT c.id, (SELECT p.id * 10 FROM p1 p WHERE p.id = c.pid AND p.name <> 'x') AS x FROM c1 c ORDER BY 1;
INSERT INTO c1 VALUES (14, 3);
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id = c.pid) FROM c1 c ORDER BY c.id;
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id = c.pid) FROM c1 c WHERE c.id < 14 ORDER BY c.id;
SET duet.engine = 'column';
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id = c.pid) FROM c1 c WHERE c.id < 14 ORDER BY c.id;
RESET duet.engine;
-- A condition on the outer row alone, and a select list that reads the outer row.
SELECT c.id, (SELECT p.name FROM p1 p WHERE c.id > 10 AND p.id = c.pid) FROM c1 c WHERE c.id < 14 ORDER BY c.id;
SELECT c.id, (SELECT p.name || '/' || c.id FROM p1 p WHERE p.id = c.pid) FROM c1 c WHERE c.id < 14 ORDER BY c.id;
SELECT c.id, (SELECT coalesce(p.name, 'none') || c.pid FROM p1 p WHERE c.pid IS NOT NULL AND p.id = c.pid) AS x FROM c1 c WHERE c.id < 14 ORDER BY c.id;
-- Correlation by inequality, EXISTS and IN in a select list, NOT IN with NULLs, LIMIT,
-- under OR, and a function of the outer row in FROM.
SELECT c.id, (SELECT count(*) FROM p1 p WHERE p.id < c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, (SELECT max(p.name) FROM p1 p WHERE p.id <> c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, EXISTS (SELECT 1 FROM p1 p WHERE p.id > c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, NOT EXISTS (SELECT 1 FROM p1 p WHERE p.id = c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, c.pid IN (SELECT p.id FROM p1 p WHERE p.name < 'three') FROM c1 c ORDER BY 1;
SELECT c.id, c.pid NOT IN (SELECT CASE WHEN p.id = 3 THEN NULL ELSE p.id END FROM p1 p WHERE p.id <= c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id >= c.pid ORDER BY p.id, p.name LIMIT 1) FROM c1 c ORDER BY 1;
SELECT c.id FROM c1 c WHERE c.id = 10 OR EXISTS (SELECT 1 FROM p1 p WHERE p.id = c.pid + 1) ORDER BY 1;
SELECT c.id, (SELECT p.name FROM p1 p WHERE p.id > c.pid) FROM c1 c ORDER BY 1;
SELECT c.id, (SELECT sum(x) FROM generate_series(1, c.pid) AS g(x)) FROM c1 c ORDER BY 1;
-- Nested: the inner subquery is also correlated by inequality, one level down.
SELECT c.id, (SELECT count(*) FROM p1 p WHERE p.id < c.pid AND EXISTS (SELECT 1 FROM c1 x WHERE x.pid > p.id AND x.id <> c.id)) FROM c1 c ORDER BY 1;
-- A name of the level in between shadows the outer one; a nested subquery reads both.
SELECT c.id, (SELECT count(*) FROM c1 c WHERE c.id > 10 AND EXISTS (SELECT 1 FROM p1 p WHERE p.id < c.pid)) FROM c1 c ORDER BY 1;
SELECT o.id, (SELECT count(*) FROM c1 c WHERE c.pid <= o.pid AND EXISTS (SELECT 1 FROM p1 p WHERE p.id < o.pid AND p.id >= c.pid)) FROM c1 o ORDER BY 1;
SET duet.engine = 'column';
SELECT c.id, (SELECT count(*) FROM p1 p WHERE p.id < c.pid), EXISTS (SELECT 1 FROM p1 p WHERE p.id > c.pid) FROM c1 c ORDER BY 1;
RESET duet.engine;
-- Per outer row, the subquery reads the statement's snapshot: in a transaction, its own
-- uncommitted rows.
BEGIN;
INSERT INTO p1 VALUES (0, 'zero');
SELECT c.id, (SELECT count(*) FROM p1 p WHERE p.id < c.pid) FROM c1 c ORDER BY 1;
ROLLBACK;
SELECT c.id, (SELECT count(*) FROM p1 p WHERE p.id < c.pid) FROM c1 c ORDER BY 1;
DROP TABLE p1, c1;
-- A subquery whose select list reads only the outer row is NULL when it has no row, the value for one, 21000 for more.
create table sq_e1(id int primary key, v text);
create table sq_e0(id int primary key, c2 text);
insert into sq_e0 values (1,'x'),(2,'y');
SELECT (SELECT a5.c2 FROM sq_e1 AS a6) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
SELECT (SELECT coalesce(a6.v, a5.c2) FROM sq_e1 AS a6) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
SELECT (SELECT a5.c2 FROM sq_e1 AS a6 LIMIT 1) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
insert into sq_e1 values (1, NULL);
SELECT (SELECT a5.c2 FROM sq_e1 AS a6) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
SELECT (SELECT coalesce(a6.v, a5.c2) FROM sq_e1 AS a6) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
insert into sq_e1 values (2, 'z');
SELECT (SELECT a5.c2 FROM sq_e1 AS a6) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
SELECT (SELECT a5.c2 FROM sq_e1 AS a6 WHERE a6.id = a5.id) AS o8 FROM sq_e0 AS a5 ORDER BY a5.id;
drop table sq_e0; drop table sq_e1;
-- a subquery run per row under a CASE runs for the rows that take its branch
CREATE TABLE cg (id int PRIMARY KEY, k int);
INSERT INTO cg VALUES (1, 10), (2, 20), (3, NULL), (4, 40);
SELECT id, CASE WHEN k > 15 THEN (SELECT count(*) FROM cg c2 WHERE c2.k < cg.k) WHEN k IS NULL THEN -1 ELSE (SELECT max(c2.k) FROM cg c2 WHERE c2.k > cg.k) END FROM cg ORDER BY id;
SELECT id, CASE k WHEN 20 THEN (SELECT min(c2.id) FROM cg c2 WHERE c2.k <> cg.k) END, CASE WHEN id < 3 THEN CASE WHEN k > 10 THEN (SELECT count(*) FROM cg c2 WHERE c2.id < cg.id) END END FROM cg ORDER BY id;
SELECT id, CASE WHEN id = 1 THEN (SELECT c2.k FROM cg c2 WHERE c2.k >= cg.k) ELSE 0 END FROM cg WHERE id <> 1 ORDER BY id;
DROP TABLE cg;
-- a CASE's guard evaluates its conditions only where the CASE does (no 22012 from 100 / x)
CREATE TABLE rt (id int PRIMARY KEY, x int, c3 char(3), v varchar(5));
CREATE TABLE ru (v int);
INSERT INTO rt VALUES (1, 0, 'ab', 'ab'), (2, 50, 'q', 'zz'), (3, 200, NULL, NULL);
INSERT INTO ru VALUES (10), (100);
SELECT id, CASE WHEN x = 0 THEN -1 WHEN 100 / x > 1 THEN (SELECT count(*) FROM ru WHERE ru.v < rt.x) END FROM rt ORDER BY id;
SELECT id, CASE WHEN EXISTS (SELECT 1 FROM ru WHERE ru.v = rt.x) THEN (SELECT count(*) FROM ru WHERE ru.v < rt.x) ELSE 0 END FROM rt ORDER BY id;
SELECT id, CASE x WHEN 50 THEN (SELECT max(v) FROM ru WHERE ru.v > rt.x) WHEN 0 THEN 7 ELSE (SELECT min(v) FROM ru WHERE ru.v < rt.x) END FROM rt ORDER BY id;
SELECT id, CASE WHEN x > 10 THEN CASE WHEN x < 100 THEN (SELECT count(*) FROM ru WHERE ru.v <> rt.x) ELSE (SELECT -count(*) FROM ru WHERE ru.v < rt.x) END END FROM rt ORDER BY id;
SELECT v FROM rt UNION SELECT c3 FROM rt ORDER BY 1;
DROP TABLE rt; DROP TABLE ru;
