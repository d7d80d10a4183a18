-- INSERT … ON CONFLICT DO NOTHING | DO UPDATE. tests/tests/psql.rs runs this with psql -X -A -t on DuetDB
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
-- DO UPDATE: excluded is the proposed row, the target's name (or alias) the stored one
INSERT INTO oc VALUES (1, 'new@x', 5) ON CONFLICT (id) DO UPDATE SET n = oc.n + excluded.n, email = excluded.email RETURNING *;
INSERT INTO oc AS t VALUES (2, 'two@x', 1), (3, 'three@x', 100) ON CONFLICT (id) DO UPDATE SET n = t.n * 10 WHERE t.n < 10 RETURNING id, n;
INSERT INTO oc VALUES (11, 'c@x', 0) ON CONFLICT (email) DO UPDATE SET n = -1;
INSERT INTO oc VALUES (12, 'e@x', 0), (12, 'f@x', 0) ON CONFLICT (id) DO UPDATE SET n = 0;
INSERT INTO oc VALUES (13, 'g@x', 0) ON CONFLICT DO UPDATE SET n = 0;
INSERT INTO oc VALUES (1, 'h@x', 0) ON CONFLICT (id) DO UPDATE SET nope = 0;
INSERT INTO oc VALUES (1, 'c@x', 0) ON CONFLICT (id) DO UPDATE SET email = excluded.email;
INSERT INTO oc VALUES (1, 'i@x', 0) ON CONFLICT ON CONSTRAINT oc_pkey DO UPDATE SET n = excluded.n + 1;
SELECT * FROM oc ORDER BY id;
DROP TABLE oc;
