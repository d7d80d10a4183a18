-- PostgreSQL's numeric display scale: averages and quotients print as many decimals as
-- their size calls for, CASE, COALESCE, UNION and VALUES keep each value's own.
CREATE TABLE ns (id int PRIMARY KEY, y numeric(10,2), i int, b bigint);
INSERT INTO ns VALUES (1, 1.50, 1, 10), (2, 2.25, 2, 20000), (3, 3, 1000, -7), (4, 4.1, 3, NULL);
SELECT avg(i), avg(y), sum(y), avg(b) FROM ns;
SELECT y / 3, i / 3.0, y * y, y + 1, b / 7.0 FROM ns ORDER BY id;
SELECT 1.0 / 3, 10::numeric / 4, 0 / 3.0, -7 / 3.0, 2 / 3::numeric, 12345 / 1::numeric, 20000 / 1::numeric;
SELECT 1 / 100000.0, 10000 / 10001::numeric, 9999 / 10000::numeric;
SELECT CASE WHEN id > 2 THEN 1.5 ELSE 2.25 END, coalesce(NULL, 1.5, 2.25) FROM ns ORDER BY id;
SELECT 1.5 UNION ALL SELECT 2.25 ORDER BY 1;
SELECT * FROM (VALUES (1.5), (2.25), (3)) v(a) ORDER BY 1;
SELECT y / 3 AS q FROM ns WHERE y / 3 > 0.7 ORDER BY q;
SELECT (y / 3)::text, length((i / 3.0)::text), (i / 7.0) || 'x' FROM ns ORDER BY id;
SELECT i, avg(y), sum(y / 3), min(y / 3), max(y / 3) FROM ns GROUP BY i ORDER BY i;
SELECT avg(y) FILTER (WHERE id > 1), avg(DISTINCT i), avg(i) FILTER (WHERE id > 10) FROM ns;
SELECT q FROM (SELECT y / 3 AS q FROM ns) s ORDER BY q LIMIT 2;
SELECT a.i, b.y / a.i FROM ns a JOIN ns b ON a.id = b.id ORDER BY 1;
SELECT DISTINCT y / 3 FROM ns ORDER BY 1;
SELECT sum(i) / count(*), avg(i * 1.0), avg(y) / 2 FROM ns;
SELECT i, avg(y) FROM ns GROUP BY i HAVING avg(y) > 2 ORDER BY 1;
SELECT avg(y) * 2, avg(y) * avg(y), avg(y) * y FROM ns GROUP BY y ORDER BY 1;
SELECT round(avg(y), 2), trunc(avg(i)), round(avg(i)), avg(y)::numeric(10,3), avg(y)::int FROM ns;
SELECT id, avg(y) OVER (PARTITION BY i), avg(i) OVER (ORDER BY id), sum(y / 3) OVER () FROM ns ORDER BY id;
SELECT id, avg(y) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM ns ORDER BY id;
SELECT avg(b), avg(b * 1000), avg(y * 10000), avg(2147483647), avg(12345.67 * 100.00) FROM ns;
SELECT avg(i) OVER (ORDER BY id), avg(b * 1000) OVER (ORDER BY id) FROM ns ORDER BY id;
SELECT 'eq' WHERE (SELECT avg(v) FROM (VALUES (1.0), (2.0), (2.0)) s(v)) = 5 / 3.0;
SELECT avg(a) FROM (VALUES (1::numeric), (1), (2)) v(a);
SELECT avg(v), avg(DISTINCT v) FROM (VALUES (2), (1), (1)) s(v);
CREATE TABLE nw (v numeric(30,20));
INSERT INTO nw SELECT avg(v) FROM (VALUES (1.0), (2.0), (2.0)) s(v);
SELECT v FROM nw;
SELECT (1 / 3.0)::numeric, (y / 3)::numeric, (y / 3)::numeric(10,3) FROM ns ORDER BY id;
SELECT DISTINCT v FROM (VALUES (1.5), (1.50)) s(v);
SELECT id, y - (SELECT avg(y) FROM ns), (SELECT avg(y) FROM ns), (SELECT 1.5 UNION ALL SELECT 2.25 ORDER BY 1 LIMIT 1) FROM ns ORDER BY id;
SELECT (SELECT avg(v) FROM (VALUES (1.0), (2.0), (2.0)) s(v));
SELECT 1 / 0.0;
SELECT avg(y) FROM ns WHERE false;
-- An unconstrained numeric column keeps each value's display scale as written.
CREATE TABLE nu (id int PRIMARY KEY, x numeric, y numeric(10,2), t text);
INSERT INTO nu VALUES (1, 1.5, 1.5, 'a'), (2, 2.50, 2, 'b'), (3, 100, 3.333, 'c'), (4, '7.000', 4, 'd'), (5, NULL, NULL, 'e'), (6, 1e3, 1, 'f'), (7, '1.25e1', 1, 'g'), (8, 0.1::float8, 1, 'h');
INSERT INTO nu VALUES (9, 1.000000000000, 0, 'i'), (10, -0.0500, 0, 'j'), (11, 4.5::real, 0, 'k');
SELECT * FROM nu ORDER BY id;
SELECT x, x + 1, x * 2, -x, abs(x), sum(x) OVER () FROM nu ORDER BY id;
SELECT sum(x), min(x), max(x), avg(x), count(DISTINCT x) FROM nu;
UPDATE nu SET t = 'z' WHERE id = 2;
UPDATE nu SET x = x * 2 WHERE id = 1;
UPDATE nu SET x = x + 0.000 WHERE id = 3;
SELECT id, x, x::text, x || '!', length(x::text) FROM nu ORDER BY id;
SELECT * FROM nu WHERE id = 2;
SELECT x FROM nu WHERE x = 2.5 ORDER BY id;
INSERT INTO nu (id, x) SELECT id + 100, x FROM nu WHERE id < 100;
SELECT id, x FROM nu WHERE id > 100 ORDER BY id;
SELECT DISTINCT x FROM nu ORDER BY x;
SELECT x, count(*) FROM nu GROUP BY x ORDER BY x;
SELECT a.x, b.x, coalesce(a.x, 0), CASE WHEN a.id > 5 THEN a.x ELSE b.y END FROM nu a JOIN nu b ON a.id + 100 = b.id ORDER BY a.id;
SELECT x FROM nu WHERE id < 5 UNION ALL SELECT y FROM nu WHERE id < 3 ORDER BY 1;
DELETE FROM nu WHERE id > 100;
COPY (SELECT * FROM nu ORDER BY id) TO STDOUT;
COPY nu FROM STDIN;
20	3.10	1	c
21	4e2	1	c
22	\N	1	c
\.
SELECT id, x FROM nu WHERE id >= 20 ORDER BY id;
INSERT INTO nu VALUES (30, 1.5) ON CONFLICT (id) DO NOTHING;
INSERT INTO nu VALUES (1, 9.90) ON CONFLICT (id) DO UPDATE SET x = excluded.x RETURNING id, x;
INSERT INTO nu VALUES (31, 0.50) RETURNING x, x * 2;
UPDATE nu SET x = 7.25 WHERE id = 31 RETURNING *;
PREPARE pn(numeric) AS INSERT INTO nu (id, x) VALUES (32, $1);
EXECUTE pn('4.500');
SELECT x FROM nu WHERE id IN (30, 31, 32) ORDER BY id;
CREATE TABLE nd (id int PRIMARY KEY, x numeric DEFAULT 1.50);
INSERT INTO nd (id) VALUES (1);
ALTER TABLE nd ADD COLUMN z numeric DEFAULT 2.000;
INSERT INTO nd (id, x) VALUES (2, 3);
SELECT * FROM nd ORDER BY id;
SELECT round(round(1, 0), 1), round(2.5::numeric, 3), round(1234.5678, -2), trunc(1.999, 1), round(1.5::float8);
SELECT id, round(x, 2), trunc(x, 1), round(x, -1), round(x) FROM nu WHERE id IN (2, 4, 9, 10) ORDER BY id;
-- Window functions: the chosen row's scale.
CREATE TABLE nwin (id int PRIMARY KEY, g int, x numeric);
INSERT INTO nwin VALUES (1, 1, 1.5), (2, 1, 2.25), (3, 1, 0.125), (4, 2, 10), (5, 2, 3.0), (6, 2, NULL);
SELECT id, max(x) OVER (PARTITION BY g), min(x) OVER (PARTITION BY g), first_value(x) OVER (PARTITION BY g ORDER BY id), last_value(x) OVER (PARTITION BY g ORDER BY id), lag(x) OVER (ORDER BY id), lead(x, 1, 0) OVER (ORDER BY id), nth_value(x, 2) OVER (ORDER BY id), sum(x) OVER (ORDER BY id) FROM nwin ORDER BY id;
SELECT id, max(x) OVER (ORDER BY id), min(x) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), max(-x) OVER (PARTITION BY g ORDER BY id), max(x * 2) OVER () FROM nwin ORDER BY id;
SELECT x FROM nwin WHERE id < 3 UNION ALL SELECT 7 UNION ALL SELECT 0.50 ORDER BY 1;
SELECT g FROM nwin WHERE id = 1 UNION ALL SELECT 1.5 ORDER BY 1;
SELECT id, greatest(x, 1.50), least(x, 3), greatest(x, 2.25, 0.5) FROM nwin ORDER BY id;
SELECT g, string_agg(x::text, ',' ORDER BY id), string_agg((x * 2)::text, ';' ORDER BY id) FROM nwin GROUP BY g ORDER BY g;
-- Numerics beside floats are floats.
SELECT 1/3::float8 = 0.333333333333333, 1/3::float8 IN (0.333333333333333), 1/3::float8 > 0.333333333333333, 1/3::float8 + 0.5, 0.5 BETWEEN 0.1::float8 AND 1;
SELECT coalesce(1.5, 1/3::float8), coalesce(NULL::numeric, 1/3::float8), CASE WHEN true THEN 1/3::float8 ELSE 1.5 END, greatest(1.5, 1/3::float8), least(0.25, 2::float4), nullif(0.5, 0.5::float8);
SELECT x FROM (VALUES (1.5), (1/3::float8)) v(x) ORDER BY x;
SELECT 1.5 AS x UNION ALL SELECT 1/3::float8 ORDER BY x;
CREATE TABLE fz (id int PRIMARY KEY, f float8, n numeric(10,3), r real);
INSERT INTO fz VALUES (1, 0.1, 0.1, 0.1), (2, 1/3::float8, 0.333, 2.5);
SELECT id FROM fz WHERE f = n ORDER BY id;
SELECT id FROM fz WHERE r = 0.1 ORDER BY id;
SELECT id, f FROM fz WHERE f > 0.333 ORDER BY id;
SELECT f FROM fz UNION ALL SELECT n FROM fz ORDER BY 1;
SELECT id, CASE WHEN id = 1 THEN f ELSE n END FROM fz ORDER BY id;
SELECT max(coalesce(100.00, 1.125)), sum(1.50), min(coalesce(y, 1.125)), max(1.5) OVER () FROM ns GROUP BY id ORDER BY id;
SELECT DISTINCT ON (g) g, x FROM nwin ORDER BY g, id;
SELECT g, x, count(*) FROM nwin GROUP BY ROLLUP (g, x) ORDER BY g, x, 3;
-- Text of numerics in filters a scan evaluates, join conditions and sort keys.
SELECT id FROM nu WHERE x::text = '2.50' ORDER BY id;
SELECT a.id FROM nu a JOIN nwin b ON length(a.x::text) = 3 AND b.id = 1 ORDER BY a.id;
SELECT id FROM nu WHERE id < 12 ORDER BY x::text, id;
SELECT 'a' || coalesce(count(*), 12345.67) FROM nu;
