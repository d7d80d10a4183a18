-- Text cast to array types (PostgreSQL's array input syntax), as drivers and ORMs send
-- arrays. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB and on PostgreSQL 15
-- and requires byte-identical output (arrays.out is PostgreSQL's).
\set VERBOSITY sqlstate
SELECT '{1,2,3}'::int[];
SELECT ('{"a b",NULL,"q\"x",c, d e }')::varchar[];
SELECT '{t,f,true}'::bool[], '{}'::int[], '{NULL}'::text[];
SELECT '{2024-01-31, 1/5/2024}'::date[];
SELECT * FROM unnest(('{"Can add","Can change"}')::varchar[], ('{1,2}'::int2[])::integer[]);
SELECT cardinality('{a,b,c}'::text[]), ('{10,20,30}'::int[])[2];
CREATE TABLE perm (id serial PRIMARY KEY, name varchar(50) NOT NULL, ct int NOT NULL);
INSERT INTO perm (name, ct) SELECT * FROM unnest(('{"Can add log entry","Can change, log"}')::varchar[], ('{1,1}'::int2[])::integer[]) RETURNING id, name;
SELECT '{1,x}'::int[];
SELECT '1,2'::int[];
SELECT '{1,,2}'::int[];
SELECT '{"open}'::text[];
DROP TABLE perm;
-- Arrays cast to text print as PostgreSQL prints them.
SELECT array[1,2]::text, array['a','b c','',NULL,'x"y']::text, array[true,false]::text;
SELECT array[array[1,2],array[3,4]]::text, (array[]::int[])::text, CAST(NULL::int[] AS text);
SELECT array_agg(x ORDER BY x)::text FROM (VALUES (2),(1)) v(x);
SELECT array[1.5::float8, 0.1::float8]::text;
-- ARRAY(subquery): the rows of a subquery as an array, correlated or not, ordered or not, empty
CREATE TABLE arr_p (id int PRIMARY KEY, name text);
CREATE TABLE arr_c (id int PRIMARY KEY, pid int, tag text, n int);
INSERT INTO arr_p VALUES (1, 'a'), (2, 'b'), (3, 'c');
INSERT INTO arr_c VALUES (1, 1, 'x', 3), (2, 1, 'y', 1), (3, 2, 'z', 2);
SELECT arr_p.id, ARRAY(SELECT arr_c.tag FROM arr_c WHERE arr_c.pid = arr_p.id ORDER BY arr_c.n) AS tags FROM arr_p ORDER BY 1;
SELECT ARRAY(SELECT id FROM arr_p ORDER BY id DESC) AS ids;
SELECT ARRAY(SELECT tag FROM arr_c WHERE false) AS none;
SELECT arr_p.name, cardinality(ARRAY(SELECT arr_c.n FROM arr_c WHERE arr_c.pid = arr_p.id)) AS k FROM arr_p ORDER BY 1;
DROP TABLE arr_p; DROP TABLE arr_c;
CREATE TABLE arr_o (a int, b int);
INSERT INTO arr_o VALUES (1, 30), (2, 20), (3, 10);
SELECT ARRAY(SELECT a FROM arr_o ORDER BY 1 DESC) AS by_position, ARRAY(SELECT b AS a FROM arr_o ORDER BY a) AS by_alias;
DROP TABLE arr_o;
