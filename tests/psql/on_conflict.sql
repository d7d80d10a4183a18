-- INSERT … ON CONFLICT DO NOTHING. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB
-- and on PostgreSQL 15 and requires byte-identical output (on_conflict.out is PostgreSQL's).
\set VERBOSITY sqlstate
CREATE TABLE oc (id int PRIMARY KEY, email text UNIQUE, n int);
INSERT INTO oc VALUES (1, 'a@x', 1);
INSERT INTO oc VALUES (1, 'b@x', 2) ON CONFLICT DO NOTHING;
INSERT INTO oc VALUES (2, 'a@x', 2) ON CONFLICT DO NOTHING;
INSERT INTO oc VALUES (3, 'c@x', 3), (3, 'd@x', 4), (4, 'c@x', 5), (5, NULL, 6), (6, NULL, 7) ON CONFLICT DO NOTHING RETURNING id;
INSERT INTO oc VALUES (1, 'z@x', 9) ON CONFLICT (id) DO NOTHING;
INSERT INTO oc VALUES (7, 'a@x', 9) ON CONFLICT (id) DO NOTHING;
INSERT INTO oc VALUES (8, 'a@x', 9) ON CONFLICT ON CONSTRAINT oc_email_key DO NOTHING;
INSERT INTO oc VALUES (9, 'q@x', 9) ON CONFLICT (n) DO NOTHING;
INSERT INTO oc VALUES (9, 'q@x', 9) ON CONFLICT ON CONSTRAINT nope DO NOTHING;
BEGIN;
INSERT INTO oc VALUES (10, 'k@x', 1);
INSERT INTO oc VALUES (10, 'k@x', 1) ON CONFLICT DO NOTHING;
COMMIT;
SELECT * FROM oc ORDER BY id;
DROP TABLE oc;
