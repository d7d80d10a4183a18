-- time, interval and array columns: stored, read back, compared, sorted, computed with and
-- copied as PostgreSQL 15 does. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB
-- and on PostgreSQL and requires byte-identical output (column_types.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE ct (id int PRIMARY KEY, t time, i interval, a int[], s varchar(5)[], n numeric(5,2)[], ts timestamp[], b boolean[], f float8[], d date[]);
INSERT INTO ct VALUES (1, '12:30', '1 day 02:00:00', '{1,2,NULL}', '{"a b",c}', '{1.5,2}', '{"2024-01-01 10:00"}', '{t,f}', '{1.5,0.1}', '{2024-01-31}');
INSERT INTO ct VALUES (2, time '23:59:59.5', interval '-3 mons 2 days', array[4,5], array['x'], NULL, NULL, NULL, NULL, NULL);
INSERT INTO ct VALUES (3, '1:02 pm', '1.5 months', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
INSERT INTO ct (id, t, i) VALUES (4, '24:00', '1 year 2 months 3 days 04:05:06.5'), (5, '00:00:00.000001', '@ 3 hours ago'), (6, '10:00', '30 days'), (7, '10:00', '1 mon');
SELECT * FROM ct ORDER BY id;
SELECT id, a[1], a[3], array_length(a, 1), array_upper(a, 1), array_lower(a, 1), cardinality(s), t + interval '1 hour', i * 2, i / 2, i * 0.5 FROM ct ORDER BY id;
-- intervals compare and sort by their length, a month as 30 days
SELECT id, i FROM ct WHERE i > '1 month' ORDER BY id;
SELECT id FROM ct WHERE i = interval '30 days' ORDER BY id;
SELECT id, i FROM ct WHERE i IS NOT NULL ORDER BY i, id;
SELECT interval '1 month' > interval '40 days', interval '1 day' = interval '24 hours', interval '25 hours' BETWEEN interval '1 day' AND interval '2 days';
SELECT id FROM ct WHERE i IN ('30 days', '2 days') ORDER BY id;
SELECT id FROM ct WHERE i NOT IN ('30 days') ORDER BY id;
-- min and max of intervals by length
SELECT min(i), max(i), max(i) FILTER (WHERE id > 1), min(i) FILTER (WHERE false) FROM ct;
SELECT min(x), max(x) FROM (VALUES (interval '1 mon'), (interval '40 days'), (interval '29 days 23:00'), (NULL)) v(x);
-- avg of intervals: the sum divided as interval_div divides (a month's fraction as days)
SELECT avg(i), avg(i) FILTER (WHERE false) FROM ct;
SELECT avg(x), sum(x) FROM (VALUES (interval '1 mon'), (interval '1 day'), (interval '00:00:07'), (NULL)) v(x);
SELECT id, avg(i) OVER (ORDER BY id) FROM ct ORDER BY id;
SELECT id FROM ct WHERE i IS DISTINCT FROM '1 mon' ORDER BY id;
SELECT a.id, b.id FROM ct a JOIN ct b ON a.i = b.i AND a.id < b.id ORDER BY 1, 2;
SELECT id, t FROM ct WHERE t > '12:00' ORDER BY t;
SELECT id FROM ct WHERE 4 = ANY(a);
SELECT id FROM ct WHERE a @> '{2}' ORDER BY id;
SELECT sum(i) FROM ct WHERE id < 3;
UPDATE ct SET a = a || 9, i = i + interval '1 day' WHERE id = 2 RETURNING a, i;
SELECT t::text, i::text, a::text, f::text FROM ct WHERE id <= 3 ORDER BY id;
COPY (SELECT * FROM ct WHERE id <= 3 ORDER BY id) TO STDOUT;
SELECT time '12:30', time '12:30:01.5', interval '3 days 2 hours', interval '100 hours', interval '-1 day -2 hours', interval '0', interval '1 day' - interval '1 hour 30 min';
SELECT time '10:00' + interval '3 hours', time '10:00' - time '09:30', date '2024-01-31' + time '10:00';
-- bad input
INSERT INTO ct (id, s) VALUES (10, '{abcdef}');
INSERT INTO ct (id, a) VALUES (11, '{1,x}');
INSERT INTO ct (id, i) VALUES (12, 'abc');
INSERT INTO ct (id, t) VALUES (13, '24:00:01');
INSERT INTO ct (id, t) VALUES (14, '25:00');
SELECT interval '1 day' / 0;
SELECT count(*) FROM ct;
DROP TABLE ct;
CREATE TABLE ar (id int PRIMARY KEY, a int[], s text[]);
INSERT INTO ar VALUES (1, '{1,2}', '{x,y}'), (2, '{3}', '{z}'), (3, NULL, '{}');
SELECT id FROM ar WHERE a && '{2,3}' ORDER BY id;
SELECT id FROM ar WHERE a && array[5] ORDER BY id;
SELECT id FROM ar WHERE '{1}' <@ a ORDER BY id;
SELECT id FROM ar WHERE a @> array[1,2] ORDER BY id;
SELECT id FROM ar WHERE s && '{y,z}' ORDER BY id;
SELECT array[1,2] && array[2], array[1] @> '{}', '{1,NULL}'::int[] && array[1];
DROP TABLE ar;
-- numeric written as text keeps its scale; exponents are read
SELECT '1.50'::numeric, '1.5e-9'::numeric, CAST('-12e2' AS numeric), '  3.10 '::numeric, '1.50'::numeric + 1, '2.5'::numeric * '2.50'::numeric;
SELECT 7e2, pg_typeof(7e2), 1.5e-3, -2E1, 1e0 + 1, 7e2 * 2;
CREATE TABLE nx (id int PRIMARY KEY, x numeric(12,4));
INSERT INTO nx VALUES (1, '1.5e1'), (2, '-2.5E-3'), (3, 7e2);
SELECT id, x FROM nx ORDER BY id;
DROP TABLE nx;
-- windows ordered by a time or an interval (the default RANGE frame)
CREATE TABLE wt (id int PRIMARY KEY, t time, i interval);
INSERT INTO wt VALUES (1, '10:00', '1 mon'), (2, '09:00', '30 days'), (3, '10:00', '1 day'), (4, NULL, NULL);
SELECT id, count(*) OVER (ORDER BY t), sum(id) OVER (ORDER BY i), rank() OVER (ORDER BY i DESC) FROM wt ORDER BY id;
SELECT id, count(*) OVER (ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING), max(id) OVER (PARTITION BY t ORDER BY i) FROM wt ORDER BY id;
SELECT id, count(*) OVER (PARTITION BY i), sum(id) OVER (PARTITION BY i ORDER BY id) FROM wt ORDER BY id;
SELECT time '23:00' + interval '2 hours', time '24:00:00' + interval '1 hour', time '01:00' - interval '3 hours', time '12:00' + interval '1 day 1 hour';
DROP TABLE wt;
CREATE TABLE wt2 (id int PRIMARY KEY, t time, i interval);
INSERT INTO wt2 VALUES (1, '10:00', '1 mon'), (2, NULL, '30 days'), (3, '10:00', NULL), (4, NULL, NULL);
SELECT id, t + i, t - i FROM wt2 ORDER BY id;
SELECT id, t + interval '1 hour', time '10:00' + i FROM wt2 ORDER BY id;
SELECT id, coalesce(t, time '24:00:00') + i FROM wt2 ORDER BY id;
DROP TABLE wt2;
-- negated interval literals; round(x, n) has n decimals
SELECT - INTERVAL '36 hours', -(INTERVAL '1 day'), - interval '2 days' + interval '1 day', - INTERVAL '1 year 2 mons -3 days 04:05:06.5';
SELECT round(1, 2), round(-7, 1), round(25, -1), round(2.5), round(1.005, 2);
SELECT round(x, 2), round(x, 0), round(x, -1), round(y, 3), round(y, 1), round(y, -1) FROM (VALUES (1, 1.55), (-15, -2.25), (NULL, NULL)) t(x, y) ORDER BY 1;
-- a union of a varchar(n) and a char(n) column is text (a char(n) first is refused: bpchar)
CREATE TABLE vu (a varchar(5), b text, c char(3), n numeric(5,2), m numeric(6,1));
INSERT INTO vu VALUES ('ab', 'xyz', 'q', 1.5, 2.5);
SELECT a FROM vu UNION ALL SELECT c FROM vu UNION SELECT b FROM vu ORDER BY 1;
SELECT CASE WHEN 1 = 2 THEN INTERVAL '1 hour' ELSE INTERVAL '36 hours' END;
DROP TABLE vu;
SELECT nullif(INTERVAL '1 mon', INTERVAL '30 days'), nullif(INTERVAL '1 day', INTERVAL '2 days'), nullif(NULL::interval, INTERVAL '1 day'), nullif(INTERVAL '36 hours', INTERVAL '1 day 12 hours');
