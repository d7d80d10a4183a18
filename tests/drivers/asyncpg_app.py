# What an application does with asyncpg, step by step (see common.py for the server).
import asyncio, datetime, decimal, os, traceback
import asyncpg
from common import HOST, PORT, USER, DB, TARGET, RESULTS, summary

D = decimal.Decimal
TS = datetime.datetime(2024, 5, 17, 12, 34, 56, 789000)
ROWS = [(i, f"name{i}", D(f"{i}.25"), TS + datetime.timedelta(hours=i), i % 2 == 0) for i in range(1, 21)]
STEPS = []

def step(name):
    def deco(fn):
        STEPS.append((name, fn)); return fn
    return deco

async def conn():
    return await asyncpg.connect(host=HOST, port=PORT, user=USER, database=DB, ssl=False)

@step("connect + server_version")
async def _():
    c = await conn(); print("   ", c.get_server_version()); await c.close()

@step("fetchval SELECT $1::int + 1 with 41")
async def _():
    c = await conn()
    v = await c.fetchval("SELECT $1::int + 1", 41); assert v == 42, v
    await c.close()

@step("create table with PRIMARY KEY")
async def _():
    c = await conn()
    await c.execute("DROP TABLE IF EXISTS ap_items")
    await c.execute("CREATE TABLE ap_items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2), created timestamp, active boolean)")
    await c.close()

@step("executemany insert int/text/numeric/timestamp/bool")
async def _():
    c = await conn()
    await c.executemany("INSERT INTO ap_items (id, name, price, created, active) VALUES ($1, $2, $3, $4, $5)", ROWS[:10])
    assert await c.fetchval("SELECT count(*) FROM ap_items") == 10
    await c.close()

@step("fetch with params, types roundtrip")
async def _():
    c = await conn()
    r = await c.fetchrow("SELECT id, name, price, created, active FROM ap_items WHERE id = $1", 3)
    assert tuple(r) == ROWS[2], (tuple(r), ROWS[2])
    rs = await c.fetch("SELECT id FROM ap_items WHERE active = $1 AND price > $2 AND created >= $3 ORDER BY id", True, D("3"), TS)
    assert [x["id"] for x in rs] == [4, 6, 8, 10], rs
    await c.close()

@step("prepared statement reuse")
async def _():
    c = await conn()
    ps = await c.prepare("SELECT name, price FROM ap_items WHERE id = $1")
    for i in range(1, 11):
        r = await ps.fetchrow(i); assert r["name"] == f"name{i}", r
    print("    params", [t.name for t in ps.get_parameters()], "attrs", [(a.name, a.type.name) for a in ps.get_attributes()])
    await c.close()

@step("statement cache: same query 10x via fetchrow")
async def _():
    c = await conn()
    for i in range(10):
        await c.fetchrow("SELECT count(*) FROM ap_items WHERE id > $1", i)
    await c.close()

@step("copy_records_to_table")
async def _():
    c = await conn()
    n = await c.copy_records_to_table("ap_items", records=ROWS[10:], columns=["id", "name", "price", "created", "active"])
    print("    ", n)
    assert await c.fetchval("SELECT count(*) FROM ap_items") == 20
    await c.close()

@step("copy_from_query / copy_to_table (text csv)")
async def _():
    import io
    c = await conn()
    buf = io.BytesIO()
    await c.copy_from_query("SELECT id, name FROM ap_items ORDER BY id", output=buf, format="csv")
    n = await c.fetchval("SELECT count(*) FROM ap_items")
    assert buf.getvalue().count(b"\n") == n, (buf.getvalue(), n)
    await c.execute("CREATE TEMP TABLE ap_tmp (id int, name text)") if False else None
    buf.seek(0)
    await c.execute("DROP TABLE IF EXISTS ap_copy2")
    await c.execute("CREATE TABLE ap_copy2 (id int PRIMARY KEY, name text)")
    await c.copy_to_table("ap_copy2", source=buf, format="csv")
    assert await c.fetchval("SELECT count(*) FROM ap_copy2") == n
    await c.close()

@step("transaction commit + rollback")
async def _():
    c = await conn()
    async with c.transaction():
        await c.execute("UPDATE ap_items SET name = 'tx' WHERE id = 1")
    try:
        async with c.transaction():
            await c.execute("UPDATE ap_items SET name = 'gone' WHERE id = 2")
            raise RuntimeError
    except RuntimeError:
        pass
    assert await c.fetchval("SELECT name FROM ap_items WHERE id = 2") == "name2"
    assert await c.fetchval("SELECT name FROM ap_items WHERE id = 1") == "tx"
    await c.close()

@step("transaction isolation=serializable, readonly")
async def _():
    c = await conn()
    async with c.transaction(isolation="serializable", readonly=True):
        await c.fetchval("SELECT count(*) FROM ap_items")
    async with c.transaction(isolation="repeatable_read"):
        await c.fetchval("SELECT 1")
    await c.close()

@step("nested transaction (savepoint) with inner rollback")
async def _():
    c = await conn()
    async with c.transaction():
        await c.execute("UPDATE ap_items SET name = 'outer' WHERE id = 4")
        try:
            async with c.transaction():
                await c.execute("INSERT INTO ap_items (id, name) VALUES (1, 'dup')")
        except asyncpg.UniqueViolationError:
            pass
    assert await c.fetchval("SELECT name FROM ap_items WHERE id = 4") == "outer"
    await c.close()

@step("cursor iteration in transaction")
async def _():
    c = await conn()
    async with c.transaction():
        n = 0
        async for r in c.cursor("SELECT id FROM ap_items ORDER BY id"):
            n += 1
        assert n == await c.fetchval("SELECT count(*) FROM ap_items"), n
    await c.close()

@step("pool reset query pieces individually")
async def _():
    c = await conn()
    print("    reset query:", repr(c.get_reset_query()))
    errs = []
    for q in ["SELECT pg_advisory_unlock_all()", "CLOSE ALL", "UNLISTEN *", "RESET ALL"]:
        try:
            await c.execute(q)
        except Exception as e:
            errs.append(f"{q!r} -> {getattr(e, 'sqlstate', None)} {e}")
    await c.close()
    assert not errs, errs

@step("pool acquire + reset (RESET ALL / UNLISTEN etc.)")
async def _():
    p = await asyncpg.create_pool(host=HOST, port=PORT, user=USER, database=DB, ssl=False, min_size=1, max_size=2)
    for _ in range(3):
        async with p.acquire() as c:
            await c.fetchval("SELECT 1")
    await p.close()

@step("uuid, jsonb, time and interval: typed parameters (binary uuid) and results")
async def _():
    import json, uuid
    c = await conn()
    await c.execute("DROP TABLE IF EXISTS ap_docs")
    await c.execute("CREATE TABLE ap_docs (id uuid PRIMARY KEY, doc jsonb, at time, every interval)")
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    await c.execute("INSERT INTO ap_docs VALUES ($1, $2, $3, $4)", u, json.dumps({"a": 1}),
                    datetime.time(12, 30, 1, 500), datetime.timedelta(days=1, hours=2))
    await c.execute("INSERT INTO ap_docs VALUES (gen_random_uuid(), '{\"b\": 2}', '10:00', '1 mon')")
    r = await c.fetchrow("SELECT id, doc, at, every FROM ap_docs WHERE id = $1", u)
    assert (r["id"], json.loads(r["doc"]), r["at"], r["every"]) == (
        u, {"a": 1}, datetime.time(12, 30, 1, 500), datetime.timedelta(days=1, hours=2)), r
    assert await c.fetchval("SELECT $1::uuid", u) == u
    await c.execute("UPDATE ap_docs SET at = $2 WHERE id = $1", u, datetime.time(8))
    n = await c.fetchval("SELECT count(*) FROM ap_docs WHERE doc @> $1 AND at < $2", '{"a": 1}', datetime.time(9))
    assert n == 1, n
    ids = [x["id"] for x in await c.fetch("SELECT id FROM ap_docs ORDER BY every")]
    assert ids[0] == u and all(isinstance(i, uuid.UUID) for i in ids), ids
    await c.close()

@step("int[], bigint[], text[] and numeric[] columns, parameters and binary COPY (type introspection)")
async def _():
    import decimal
    c = await conn()
    await c.execute("DROP TABLE IF EXISTS ap_arrays")
    await c.execute("CREATE TABLE ap_arrays (id int PRIMARY KEY, a int[], b bigint[], s text[], n numeric(6,2)[])")
    await c.execute("INSERT INTO ap_arrays VALUES ($1, $2, $3, $4, $5)", 1, [1, 2, None],
                    [2**40], ["x", "y z"], [decimal.Decimal("1.50")])
    await c.execute("INSERT INTO ap_arrays VALUES (2, '{}', NULL, '{\"a,b\"}', '{}')")
    rows = await c.fetch("SELECT id, a, b, s, n FROM ap_arrays ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, [1, 2, None], [2**40], ["x", "y z"], [decimal.Decimal("1.50")]),
        (2, [], None, ["a,b"], []),
    ], rows
    assert await c.fetchval("SELECT $1::int[]", [3, 4]) == [3, 4]
    ids = [r["id"] for r in await c.fetch("SELECT id FROM ap_arrays WHERE a @> $1 ORDER BY id", [2])]
    assert ids == [1], ids
    assert await c.fetchval("SELECT array_length(a, 1) FROM ap_arrays WHERE id = $1", 1) == 3
    # Binary COPY of array columns.
    await c.copy_records_to_table("ap_arrays", records=[
        (3, [7, None], None, ["q r", "", "NULL", 'x"y'], [decimal.Decimal("-2.25")]),
        (4, [], [1, -1], [], None)])
    rows = await c.fetch("SELECT id, a, b, s, n FROM ap_arrays WHERE id > 2 ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (3, [7, None], None, ["q r", "", "NULL", 'x"y'], [decimal.Decimal("-2.25")]),
        (4, [], [1, -1], [], None),
    ], rows
    await c.close()

async def main():
    for name, fn in STEPS:
        try:
            await fn()
            RESULTS.append((name, "PASS", "")); print(f"[PASS] {name}", flush=True)
        except Exception as e:
            msg = f"{type(e).__module__}.{type(e).__name__} sqlstate={getattr(e, 'sqlstate', None)}: {e}"
            RESULTS.append((name, "FAIL", msg)); print(f"[FAIL] {name}: {msg}", flush=True)
            if os.environ.get("TB"): traceback.print_exc()

asyncio.run(main())
summary()
