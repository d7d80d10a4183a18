// What an application does with node-postgres, step by step. The server: DRIVER_HOST,
// DRIVER_PORT, DRIVER_USER, DRIVER_DB (tests/tests/drivers.rs sets them); exits 1 if a step
// failed.
const { Client, Pool } = require('pg');
const TARGET = process.env.DRIVER_LABEL || 'duet';
const cfg = {
  host: process.env.DRIVER_HOST || '127.0.0.1',
  port: Number(process.env.DRIVER_PORT || 5433),
  user: process.env.DRIVER_USER || 'postgres',
  database: process.env.DRIVER_DB || 'duetdb',
};
const results = [];
async function step(name, fn) {
  try { await fn(); results.push([name, 'PASS']); console.log(`[PASS] ${name}`); }
  catch (e) { results.push([name, 'FAIL']); console.log(`[FAIL] ${name}: sqlstate=${e.code} ${e.message}`); }
}
function eq(a, b) { const x = JSON.stringify(a), y = JSON.stringify(b); if (x !== y) throw new Error(`assert ${x} !== ${y}`); }

(async () => {
  const c = new Client(cfg);
  await step('connect', async () => { await c.connect(); });
  await step('create table with PRIMARY KEY', async () => {
    await c.query('DROP TABLE IF EXISTS np_t');
    await c.query('CREATE TABLE np_t (id integer PRIMARY KEY, name text, n integer, price numeric(10,2), ts timestamp, ok boolean)');
  });
  await step('parameterized inserts', async () => {
    for (let i = 1; i <= 10; i++)
      await c.query('INSERT INTO np_t (id, name, n, price, ts, ok) VALUES ($1, $2, $3, $4, $5, $6)',
        [i, `name${i}`, i * 10, `${i}.25`, new Date(Date.UTC(2024, 0, i, 12)), i % 2 === 0]);
  });
  await step('parameterized select', async () => {
    const r = await c.query('SELECT id, name, price, ok FROM np_t WHERE id = $1 AND name = $2', [3, 'name3']);
    eq(r.rows, [{ id: 3, name: 'name3', price: '3.25', ok: false }]);
  });
  await step('SELECT $1::int + 1 with 41', async () => {
    const r = await c.query('SELECT $1::int + 1 AS v', [41]); eq(r.rows[0].v, 42);
  });
  await step('column names of SELECT count(*), sum(n) FROM t', async () => {
    const r = await c.query('SELECT count(*), sum(n) FROM np_t');
    console.log('    fields', r.fields.map(f => [f.name, f.dataTypeID]), 'row', r.rows[0]);
    eq(r.fields.map(f => f.name), ['count', 'sum']);
    eq(r.rows[0], { count: '10', sum: '550' });
  });
  await step('prepared (named) query executed 10x', async () => {
    for (let i = 1; i <= 10; i++) {
      const r = await c.query({ name: 'get-by-id', text: 'SELECT name, n FROM np_t WHERE id = $1', values: [i] });
      eq(r.rows[0].name, `name${i}`);
    }
  });
  await step('named query with rowMode array + typed params', async () => {
    const r = await c.query({ name: 'range', text: 'SELECT id FROM np_t WHERE ts >= $1 AND price > $2 AND ok = $3 ORDER BY id', values: [new Date(Date.UTC(2024, 0, 5)), '5', true], rowMode: 'array' });
    eq(r.rows, [[6], [8], [10]]);
  });
  await step('transaction commit', async () => {
    await c.query('BEGIN');
    await c.query('UPDATE np_t SET name = $1 WHERE id = $2', ['tx', 1]);
    await c.query('COMMIT');
    eq((await c.query('SELECT name FROM np_t WHERE id = 1')).rows[0].name, 'tx');
  });
  await step('transaction rollback after error', async () => {
    await c.query('BEGIN');
    await c.query("UPDATE np_t SET name = 'gone' WHERE id = 2");
    try { await c.query("INSERT INTO np_t (id) VALUES (1)"); throw new Error('no unique violation'); }
    catch (e) { if (e.code !== '23505') throw e; }
    await c.query('ROLLBACK');
    eq((await c.query('SELECT name FROM np_t WHERE id = 2')).rows[0].name, 'name2');
  });
  await step('SAVEPOINT inside transaction', async () => {
    await c.query('BEGIN');
    await c.query('SAVEPOINT sp1');
    try { await c.query("INSERT INTO np_t (id) VALUES (1)"); } catch (e) { await c.query('ROLLBACK TO SAVEPOINT sp1'); }
    await c.query('RELEASE SAVEPOINT sp1');
    await c.query('COMMIT');
  }).catch(() => {});
  await c.query('ROLLBACK').catch(() => {});
  await step('multi-statement simple query', async () => {
    const r = await c.query('SELECT 1 AS a; SELECT 2 AS b');
    eq(r.map(x => x.rows[0]), [{ a: 1 }, { b: 2 }]);
  });
  await step('pool with concurrent queries', async () => {
    const pool = new Pool({ ...cfg, max: 3 });
    const rs = await Promise.all([1, 2, 3, 4, 5].map(i => pool.query('SELECT name FROM np_t WHERE id = $1', [i])));
    eq(rs.length, 5); await pool.end();
  });
  await c.end().catch(() => {});
  const nf = results.filter(r => r[1] === 'FAIL').length;
  console.log(`== ${TARGET}: ${results.length - nf}/${results.length} steps passed`);
  process.exit(nf ? 1 : 0);
})();
