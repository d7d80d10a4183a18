-- SQL's PREPARE, EXECUTE and DEALLOCATE. tests/tests/psql.rs runs this with psql -X -A -t on
-- DuetDB and on PostgreSQL 15 and requires byte-identical output (prepare.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE kv (k int PRIMARY KEY, v text);
PREPARE ins (int, text) AS INSERT INTO kv VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = kv.v || $2;
EXECUTE ins(1, 'a');
EXECUTE ins(2, 'b');
EXECUTE ins(1, 'c');
PREPARE q (int) AS SELECT k, v FROM kv WHERE k >= $1 ORDER BY k;
EXECUTE q(1);
EXECUTE q(2);
PREPARE cnt AS SELECT count(*) FROM kv;
EXECUTE cnt;
PREPARE q AS SELECT 1;
EXECUTE nope;
EXECUTE q(1, 2);
EXECUTE q('x');
DEALLOCATE q;
EXECUTE q(1);
DEALLOCATE q;
DEALLOCATE ALL;
EXECUTE ins(3, 'd');
DROP TABLE kv;
