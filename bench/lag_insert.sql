\set id random(1, 500000000000000000)
INSERT INTO bench_kv SELECT CAST(:id AS bigint) * 16 + g, 'payload-payload-payload' FROM generate_series(0, 9) AS s(g);
