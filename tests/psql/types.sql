-- uuid, json and jsonb columns: input forms and errors, canonical output, comparisons with
-- literals (read by the type's input function), the operators, casts, both replicas.
\set VERBOSITY sqlstate
CREATE TABLE docs (id uuid PRIMARY KEY, body jsonb, raw json, tag text);
INSERT INTO docs VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": [1, 2.50, {"x": null}], "a": "hi", "a": "there", "n": 1e2}', '{"b" : [1,2],  "a":"x"}', 'one');
INSERT INTO docs VALUES ('{b0eebc999c0b4ef8bb6d6bb9bd380a12}', '[1, "two", {"k": true}]', '[3, 4]', 'two');
INSERT INTO docs VALUES ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', '"text"', 'null', 'three');
INSERT INTO docs VALUES ('not-a-uuid', '{}', '{}', 'bad');
INSERT INTO docs VALUES ('d0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14', '{"a":', '{}', 'bad');
INSERT INTO docs VALUES ('d0eebc99-9c0b-4ef8-bb6d-6bb9bd380a14', '{}', '{"a" 1}', 'bad');
SELECT * FROM docs ORDER BY id;
SELECT id FROM docs WHERE id = 'B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12';
SELECT id FROM docs WHERE id IN ('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13') ORDER BY 1;
SELECT id FROM docs WHERE id > 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12';
SELECT tag, body -> 'b', body ->> 'a', body -> 'b' -> 2, body -> 'b' ->> 1, body #> '{b,2}', body #>> '{b,0}' FROM docs ORDER BY tag;
SELECT tag, raw -> 'b', raw ->> 'a', raw -> 1 FROM docs ORDER BY tag;
SELECT tag, body -> 1, body -> -1, body ->> 0 FROM docs ORDER BY tag;
SELECT tag FROM docs WHERE body @> '{"a": "there"}' ORDER BY 1;
SELECT tag FROM docs WHERE body @> '[1]' ORDER BY 1;
SELECT tag FROM docs WHERE body ? 'n' ORDER BY 1;
SELECT tag FROM docs WHERE body ? 'two' ORDER BY 1;
SELECT tag FROM docs WHERE body ?| array['n', 'zz'] ORDER BY 1;
SELECT tag FROM docs WHERE body ?& array['n', 'zz'] ORDER BY 1;
SELECT tag FROM docs WHERE '{"a": "there"}' <@ body ORDER BY 1;
SELECT tag FROM docs WHERE body = '{"n": 100, "a": "there", "b": [1, 2.50, {"x": null}]}';
SELECT '{"a":1, "b":2}'::jsonb, '{"a":1,   "b":2}'::json, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid;
SELECT '[1,2'::jsonb;
SELECT 'zz'::uuid;
SELECT raw = raw FROM docs;
SELECT count(*), count(DISTINCT body) FROM docs;
SELECT length(gen_random_uuid()::text), gen_random_uuid() = gen_random_uuid();
UPDATE docs SET body = body || '{}' WHERE tag = 'zzz';
UPDATE docs SET raw = '{"changed": true}' WHERE id = 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13';
SELECT raw FROM docs WHERE id = 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13';
SET duet.engine = 'column';
SELECT id, body ->> 'a' FROM docs ORDER BY id;
SELECT tag FROM docs WHERE id = 'C0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A13';
RESET duet.engine;
DROP TABLE docs;
