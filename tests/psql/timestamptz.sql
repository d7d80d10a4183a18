-- timestamptz and the session's TimeZone. tests/tests/psql.rs runs this with psql -X -A -t on
-- DuetDB and on PostgreSQL 15 and requires byte-identical output (timestamptz.out is PostgreSQL's).
\set VERBOSITY sqlstate
SET TIME ZONE 'UTC';
CREATE TABLE ev (id int PRIMARY KEY, at timestamptz, plain timestamp, d date);
INSERT INTO ev VALUES (1, '2024-05-17 12:34:56.789+02', '2024-05-17 12:34:56', '2024-05-17');
INSERT INTO ev VALUES (2, '2024-05-17 12:34:56', '2024-01-01 00:00', '2024-01-01');
INSERT INTO ev VALUES (3, '2024-01-31T10:00:00Z', NULL, NULL), (4, 'Jan 31 2024 10:00 PST', NULL, NULL), (5, NULL, NULL, NULL);
INSERT INTO ev (id, at) VALUES (6, TIMESTAMP '2024-03-10 02:30:00');
INSERT INTO ev (id, at) VALUES (7, DATE '2024-03-10');
SELECT * FROM ev ORDER BY id;
SELECT id FROM ev WHERE at > '2024-05-17 10:00:00+00' ORDER BY id;
SELECT id, at FROM ev WHERE at = '2024-05-17 10:34:56.789Z';
SELECT count(*) FROM ev WHERE at < now();
SELECT pg_typeof(now()), pg_typeof(at) FROM ev WHERE id = 1;
SET TIME ZONE 'America/New_York';
SHOW TimeZone;
SELECT id, at FROM ev ORDER BY id;
INSERT INTO ev (id, at) VALUES (8, '2024-07-04 09:00');
SELECT id, at FROM ev WHERE id = 8;
SET TIME ZONE 'Asia/Kolkata';
SELECT id, at FROM ev WHERE id IN (1, 8) ORDER BY id;
SET TIME ZONE 'UTC';
SELECT id, at FROM ev WHERE id = 8;
SET TIME ZONE 'Mars/Olympus';
SELECT '2024-01-01 00:00:00+05:30'::timestamptz;
SELECT CAST('2024-06-01 12:00' AS timestamp with time zone);
SELECT at::date, at::timestamp FROM ev WHERE id = 1;
UPDATE ev SET at = '2025-01-01 00:00:00-01' WHERE id = 5;
SELECT at FROM ev WHERE id = 5;
SELECT max(at), min(at) FROM ev;
SET duet.engine = 'column';
SELECT id, at FROM ev WHERE at >= '2024-05-17' ORDER BY at, id;
SELECT count(*), min(at) FROM ev WHERE at IS NOT NULL;
RESET duet.engine;
SELECT date_trunc('day', at), extract(year FROM at) FROM ev WHERE id = 4;
COPY ev (id, at) FROM STDIN;
9	2024-12-24 18:00:00+01
10	2024-12-24 18:00:00
\.
COPY (SELECT id, at FROM ev WHERE id >= 9 ORDER BY id) TO STDOUT;
-- what reads a timestamptz as local time reads it in the session's zone
CREATE TABLE z (id int PRIMARY KEY, at timestamptz);
INSERT INTO z VALUES (1, '2024-05-17 02:30:00+00');
SET TIME ZONE 'America/New_York';
SELECT at, at::date, at::timestamp, date_trunc('day', at), extract(hour FROM at), date_part('day', at), at::text FROM z;
SELECT count(*) FROM z WHERE at::date = '2024-05-16';
SET TIME ZONE 'UTC';
SELECT at::date, at::timestamp, date_trunc('day', at) FROM z;
DROP TABLE z;
DROP TABLE ev;
