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
SELECT 1 / 0.0;
SELECT avg(y) FROM ns WHERE false;
