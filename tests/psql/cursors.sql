-- Cursors: DECLARE, FETCH, CLOSE, WITH HOLD. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB
-- and on PostgreSQL 15 and requires byte-identical output (cursors.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE cur_t (k int PRIMARY KEY, v text);
INSERT INTO cur_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
DECLARE c1 CURSOR FOR SELECT k FROM cur_t ORDER BY k;
BEGIN;
DECLARE c1 CURSOR FOR SELECT k, v FROM cur_t ORDER BY k;
FETCH 3 FROM c1;
FETCH NEXT FROM c1;
FETCH FORWARD 2 IN c1;
FETCH ALL FROM c1;
FETCH 1 FROM c1;
DECLARE c1 CURSOR FOR SELECT 1;
ROLLBACK;
BEGIN;
DECLARE h CURSOR WITH HOLD FOR SELECT k FROM cur_t WHERE k > 7 ORDER BY k;
DECLARE w CURSOR FOR SELECT k FROM cur_t;
COMMIT;
FETCH 2 FROM h;
FETCH 2 FROM w;
CLOSE h;
FETCH 1 FROM h;
CLOSE nothing;
DROP TABLE cur_t;
