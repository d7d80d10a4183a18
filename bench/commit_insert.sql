\set id random(1, 9000000000000000000)
INSERT INTO bench_kv VALUES (:id, 'payload-payload-payload');
