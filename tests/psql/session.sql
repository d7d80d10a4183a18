-- An everyday psql session. tests/tests/psql.rs runs it with `psql -X -A -t` on DuetDB
-- and on PostgreSQL 15 and requires byte-identical output (session.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, city varchar(20), joined date);
CREATE TABLE orders (id integer PRIMARY KEY, customer integer, amount numeric(10,2), placed timestamp, note text);
INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 3 = 0 THEN 'Oslo' WHEN g % 3 = 1 THEN 'Lima' END, DATE '2024-01-01' + g FROM generate_series(1, 12) g;
INSERT INTO orders SELECT g, g % 12 + 1, g * 10.25, TIMESTAMP '2024-03-01 09:00:00' + g * INTERVAL '1 hour', NULL FROM generate_series(1, 40) g;
UPDATE orders SET note = 'rush' WHERE amount > 300;
DELETE FROM orders WHERE id % 10 = 0;
SELECT count(*), sum(amount), min(placed), max(placed) FROM orders;
SELECT c.name, count(o.id) AS orders, sum(o.amount) AS total
  FROM customers c LEFT JOIN orders o ON o.customer = c.id
  GROUP BY c.name ORDER BY total DESC NULLS LAST, c.name LIMIT 5;
SELECT city, count(*) FROM customers GROUP BY city ORDER BY city NULLS FIRST;
SELECT id, amount, rank() OVER (PARTITION BY customer ORDER BY amount DESC) AS r
  FROM orders WHERE customer IN (2, 3) ORDER BY customer, r;
SELECT name FROM customers WHERE id IN (SELECT customer FROM orders WHERE note = 'rush') ORDER BY 1;
SELECT name, (SELECT max(amount) FROM orders WHERE orders.customer = customers.id) AS biggest
  FROM customers WHERE id <= 3 ORDER BY id;
SELECT upper(name), length(city), coalesce(city, '-'), joined + 30 FROM customers WHERE id < 4 ORDER BY 1;
SELECT 7 / 2, 7 % 3, -7 / 2, 2147483647 - 1, CAST(2.5 AS integer), 1.5 * 2;
SELECT 1 / 0;
SELECT name FROM nowhere;
SELECT 2147483647 + 1;
INSERT INTO customers VALUES (1, 'dup', NULL, NULL);
BEGIN;
UPDATE orders SET amount = amount + 1 WHERE id = 1;
SELECT amount FROM orders WHERE id = 1;
ROLLBACK;
SELECT amount FROM orders WHERE id = 1;
BEGIN;
INSERT INTO customers VALUES (100, 'late', 'Oslo', DATE '2024-12-24');
COMMIT;
SELECT name, city, joined FROM customers WHERE id = 100;
SELECT x, x * x AS square FROM generate_series(1, 4) x;
SELECT 'a' || NULL IS NULL, NULL = NULL, true AND NULL, false AND NULL;
SELECT c.city, o.amount, CAST(o.amount AS numeric(12,3)) AS a3, c.name::varchar(4) AS short, 'ab'::char(3) AS code,
  sum(o.id::bigint) OVER () AS total, row_number() OVER () AS n, avg(o.id) OVER () AS mean
  FROM orders o JOIN customers c ON c.id = o.customer WHERE o.id = 1 \gdesc
SELECT '2024-01-31 10:00'::timestamp, DATE '2024-01-31' + INTERVAL '1 month', 'abcdef'::varchar(3), 'ab'::char(3) || '|',
  CAST(1 AS numeric), CAST(2.50 AS numeric), CAST(amount AS numeric) FROM orders WHERE id = 2;
SELECT g FROM generate_series(TIMESTAMP '2024-01-31 10:00', TIMESTAMP '2024-04-30', '1 month') g;
SELECT '2024-02-30'::date;
CREATE TABLE sp (k int PRIMARY KEY, v text);
SAVEPOINT a;
BEGIN;
INSERT INTO sp VALUES (1, 'one');
SAVEPOINT a;
INSERT INTO sp VALUES (2, 'two');
SAVEPOINT b;
INSERT INTO sp VALUES (3, 'three');
SELECT k FROM sp ORDER BY k;
ROLLBACK TO SAVEPOINT b;
SELECT k FROM sp ORDER BY k;
INSERT INTO sp VALUES (1, 'dup');
SELECT 1;
ROLLBACK TO a;
SELECT k FROM sp ORDER BY k;
RELEASE SAVEPOINT a;
ROLLBACK TO b;
ROLLBACK;
BEGIN;
INSERT INTO sp VALUES (10, 'ten');
SAVEPOINT x;
UPDATE sp SET v = 'TEN' WHERE k = 10;
SAVEPOINT "X";
DELETE FROM sp WHERE k = 10;
ROLLBACK TO "X";
RELEASE x;
SELECT k, v FROM sp ORDER BY k;
COMMIT;
SELECT k, v FROM sp ORDER BY k;
RELEASE a;
DROP TABLE sp;
DROP TABLE orders;
DROP TABLE customers;
