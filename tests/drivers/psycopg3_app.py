# What an application does with psycopg 3, step by step (see common.py for the server).
import datetime, decimal, io
import psycopg
from psycopg import sql
from common import DSN, step, summary

D = decimal.Decimal
TS = datetime.datetime(2024, 5, 17, 12, 34, 56, 789000)
ROWS = [(i, f"name{i}", D(f"{i}.25"), TS + datetime.timedelta(hours=i), i % 2 == 0) for i in range(1, 21)]

def conn(**kw):
    return psycopg.connect(DSN, **kw)

@step("connect + server_version")
def _():
    with conn() as c:
        print("   server_version", c.info.server_version, c.info.parameter_status("server_version"))

@step("create table with PRIMARY KEY")
def _():
    with conn(autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS p3_items")
        c.execute("""CREATE TABLE p3_items (
            id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2),
            created timestamp, active boolean)""")

@step("executemany insert int/text/numeric/timestamp/bool")
def _():
    with conn() as c:
        with c.cursor() as cur:
            cur.executemany("INSERT INTO p3_items (id, name, price, created, active) VALUES (%s, %s, %s, %s, %s)", ROWS)
        c.commit()
        n = c.execute("SELECT count(*) FROM p3_items").fetchone()[0]
        assert n == 20, n

@step("select with params, types roundtrip")
def _():
    with conn() as c:
        r = c.execute("SELECT id, name, price, created, active FROM p3_items WHERE id = %s", (3,)).fetchone()
        assert r == ROWS[2], (r, ROWS[2])
        r = c.execute("SELECT count(*) FROM p3_items WHERE active = %s AND price > %s AND created >= %s", (True, D("5"), TS)).fetchone()
        assert r[0] == 8, r

@step("prepare=True explicit")
def _():
    with conn() as c:
        for i in range(1, 4):
            r = c.execute("SELECT name FROM p3_items WHERE id = %s", (i,), prepare=True).fetchone()
            assert r[0] == f"name{i}", r

@step("automatic prepare threshold (same query 10x)")
def _():
    with conn() as c:
        c.prepare_threshold = 5
        for i in range(1, 11):
            r = c.execute("SELECT name, price FROM p3_items WHERE id = %s", (i,)).fetchone()
            assert r == (f"name{i}", D(f"{i}.25")), r

@step("transaction block commit")
def _():
    with conn() as c:
        with c.transaction():
            c.execute("UPDATE p3_items SET name = %s WHERE id = %s", ("tx", 1))
        assert c.execute("SELECT name FROM p3_items WHERE id = 1").fetchone()[0] == "tx"

@step("transaction rollback on exception")
def _():
    with conn() as c:
        try:
            with c.transaction():
                c.execute("UPDATE p3_items SET name = 'gone' WHERE id = 2")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert c.execute("SELECT name FROM p3_items WHERE id = 2").fetchone()[0] == "name2"

@step("nested transaction (SAVEPOINT) with inner rollback")
def _():
    with conn() as c:
        with c.transaction():
            c.execute("UPDATE p3_items SET name = 'outer' WHERE id = 4")
            try:
                with c.transaction():
                    c.execute("UPDATE p3_items SET name = 'inner' WHERE id = 5")
                    raise psycopg.Rollback()
            finally:
                pass
            with c.transaction():
                c.execute("UPDATE p3_items SET name = 'inner2' WHERE id = 6")
        r = c.execute("SELECT id, name FROM p3_items WHERE id IN (4,5,6) ORDER BY id").fetchall()
        assert r == [(4, "outer"), (5, "name5"), (6, "inner2")], r

@step("nested transaction recovering from error inside savepoint")
def _():
    with conn() as c:
        with c.transaction():
            try:
                with c.transaction():
                    c.execute("INSERT INTO p3_items (id, name) VALUES (1, 'dup')")
            except psycopg.errors.UniqueViolation:
                pass
            c.execute("UPDATE p3_items SET name = 'after' WHERE id = 7")
        assert c.execute("SELECT name FROM p3_items WHERE id = 7").fetchone()[0] == "after"

@step("DEALLOCATE ALL then prepared again")
def _():
    with conn() as c:
        for i in range(3):
            c.execute("SELECT name FROM p3_items WHERE id = %s", (1,), prepare=True)
        c.execute("DEALLOCATE ALL")
        for i in range(3):
            c.execute("SELECT name FROM p3_items WHERE id = %s", (1,), prepare=True)

@step("implicit DEALLOCATE ALL: query 6x (auto-prepared) then rollback")
def _():
    # psycopg 3 sends DEALLOCATE ALL by itself after a ROLLBACK/DROP/ALTER once it holds prepared statements
    with conn() as c:
        for i in range(6):
            c.execute("SELECT name FROM p3_items WHERE id = %s", (i,))
        c.rollback()
        c.execute("SELECT 1")

@step("implicit DEALLOCATE ALL: query 6x then DROP TABLE")
def _():
    with conn(autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS p3_tmp (id int PRIMARY KEY)")
        for i in range(6):
            c.execute("SELECT count(*) FROM p3_items WHERE id > %s", (i,))
        c.execute("DROP TABLE p3_tmp")
        c.execute("SELECT 1")

@step("binary cursor")
def _():
    with conn() as c:
        with c.cursor(binary=True) as cur:
            cur.execute("SELECT id, name, price, created, active FROM p3_items WHERE id = %s", (10,))
            r = cur.fetchone()
            assert r == ROWS[9], (r, ROWS[9])

@step("binary params (%b placeholders)")
def _():
    with conn() as c:
        r = c.execute("SELECT count(*) FROM p3_items WHERE id > %b AND name <> %b", (10, "x")).fetchone()
        assert r[0] == 10, r

@step("server-side (named) cursor")
def _():
    with conn() as c:
        with c.cursor(name="p3cur") as cur:
            cur.execute("SELECT id FROM p3_items ORDER BY id")
            assert len(cur.fetchmany(5)) == 5
            assert len(cur.fetchall()) == 15

@step("COPY FROM STDIN (text, write_row)")
def _():
    with conn() as c:
        c.execute("DROP TABLE IF EXISTS p3_copy")
        c.execute("CREATE TABLE p3_copy (id integer PRIMARY KEY, name text, price numeric, created timestamp, active boolean)")
        with c.cursor().copy("COPY p3_copy (id, name, price, created, active) FROM STDIN") as cp:
            for r in ROWS:
                cp.write_row(r)
        c.commit()
        assert c.execute("SELECT count(*) FROM p3_copy").fetchone()[0] == 20

@step("COPY TO STDOUT (rows)")
def _():
    with conn() as c:
        with c.cursor().copy("COPY (SELECT id, name FROM p3_copy ORDER BY id) TO STDOUT") as cp:
            rows = list(cp.rows())
        assert len(rows) == 20 and rows[0] == ("1", "name1"), rows[:2]

@step("COPY FROM STDIN (BINARY)")
def _():
    with conn() as c:
        c.execute("DELETE FROM p3_copy")
        with c.cursor().copy("COPY p3_copy (id, name, price, created, active) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "text", "numeric", "timestamp", "bool"])
            for r in ROWS:
                cp.write_row(r)
        c.commit()
        assert c.execute("SELECT count(*) FROM p3_copy").fetchone()[0] == 20

@step("COPY TO STDOUT (BINARY)")
def _():
    with conn() as c:
        with c.cursor().copy("COPY (SELECT id, name, price FROM p3_copy ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
            cp.set_types(["int4", "text", "numeric"])
            rows = list(cp.rows())
        assert rows[0] == (1, "name1", D("1.25")), rows[0]

@step("pipeline mode")
def _():
    with conn() as c:
        with c.pipeline():
            cur1 = c.execute("SELECT count(*) FROM p3_items")
            cur2 = c.execute("SELECT %s::text", ("hi",))
        assert cur1.fetchone()[0] == 20 and cur2.fetchone()[0] == "hi"

@step("sql.Identifier composition + returning")
def _():
    with conn() as c:
        q = sql.SQL("INSERT INTO {} (id, name) VALUES (%s, %s) RETURNING id, name").format(sql.Identifier("p3_items"))
        r = c.execute(q, (100, "ret")).fetchone()
        assert r == (100, "ret"), r
        c.rollback()

@step("uuid and jsonb columns: parameters (binary uuid), operators, results as UUID and dict")
def _():
    import uuid
    from psycopg.types.json import Jsonb
    with conn() as c:
        c.execute("DROP TABLE IF EXISTS p3_docs")
        c.execute("CREATE TABLE p3_docs (id uuid PRIMARY KEY, doc jsonb)")
        u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        c.execute("INSERT INTO p3_docs VALUES (%s, %s)", (u, Jsonb({"b": 1, "a": [1, 2]})))
        c.execute("INSERT INTO p3_docs VALUES (gen_random_uuid(), %s)", (Jsonb({"b": 2}),))
        c.commit()
        for binary in (False, True):
            r = c.cursor(binary=binary).execute(
                "SELECT id, doc, doc -> 'a', doc ->> 'b' FROM p3_docs WHERE id = %s", (u,)).fetchone()
            assert r == (u, {"a": [1, 2], "b": 1}, [1, 2], "1"), r
        n = c.execute("SELECT count(*) FROM p3_docs WHERE doc @> %s", (Jsonb({"b": 2}),)).fetchone()[0]
        assert n == 1, n
        ids = [r[0] for r in c.execute("SELECT id FROM p3_docs ORDER BY id")]
        assert all(isinstance(i, uuid.UUID) for i in ids) and ids == sorted(ids), ids
        # A str is sent untyped: the text the statement gives it, whatever it looks like.
        n = c.execute("SELECT count(*) FROM p3_docs WHERE doc @> %s", ('{"b": 2}',)).fetchone()[0]
        assert n == 1, n
        r = c.execute("SELECT %s, %s", ('{"a": 1}', "{1,2}")).fetchone()
        assert r == ('{"a": 1}', "{1,2}"), r

@step("time, interval and array columns: parameters and results")
def _():
    with conn() as c:
        c.execute("DROP TABLE IF EXISTS p3_sched")
        c.execute("CREATE TABLE p3_sched (id int PRIMARY KEY, at time, every interval, tags text[], slots int[])")
        every = datetime.timedelta(days=1, hours=2)
        c.execute("INSERT INTO p3_sched VALUES (%s, %s, %s, %s, %s)",
                  (1, datetime.time(12, 30, 1, 500), every, ["a b", "c"], [1, None, 3]))
        c.execute("INSERT INTO p3_sched VALUES (2, '10:00', '1 mon', '{}', '{4}')")
        c.commit()
        for binary in (False, True):
            r = c.cursor(binary=binary).execute(
                "SELECT at, every, tags, slots FROM p3_sched WHERE id = %s", (1,)).fetchone()
            assert r == (datetime.time(12, 30, 1, 500), every, ["a b", "c"], [1, None, 3]), r
        ids = [r[0] for r in c.execute(
            "SELECT id FROM p3_sched WHERE every < %s AND %s = ANY(slots) ORDER BY id",
            (datetime.timedelta(days=2), 3))]
        assert ids == [1], ids

@step("numeric and float parameters keep their types and scales (unconstrained numeric column)")
def _():
    with conn() as c:
        c.execute("DROP TABLE IF EXISTS p3_amounts")
        c.execute("CREATE TABLE p3_amounts (id int PRIMARY KEY, amount numeric, price numeric(6,2), f float8)")
        values = [D("1.50"), D("100"), D("0.0010"), D("1E+2"), D("0E-8"), D("-7.250")]
        for i, v in enumerate(values):
            c.execute("INSERT INTO p3_amounts VALUES (%s, %s, %s, %s)", (i, v, v, 2.5))
        c.commit()
        for binary in (False, True):
            got = [r[0] for r in c.cursor(binary=binary).execute(
                "SELECT amount FROM p3_amounts ORDER BY id")]
            assert [str(v) for v in got] == ["1.50", "100", "0.0010", "100", "0E-8", "-7.250"], got
        # A parameter the client declares numeric or float8 is one, as in PostgreSQL:
        # `$1 + 1` with 2.5 is 3.5 (not an integer rounded to 3).
        r = c.execute("SELECT %s + 1, %s * 2, %s + 1", (D("2.5"), D("2.5"), 2.5)).fetchone()
        assert r == (D("3.5"), D("5.0"), 3.5), r
        ids = [r[0] for r in c.execute("SELECT id FROM p3_amounts WHERE id < %s ORDER BY id", (D("1.5"),))]
        assert ids == [0, 1], ids
        r = c.execute("SELECT amount * 2, price FROM p3_amounts WHERE id = %s", (0,)).fetchone()
        assert r == (D("3.00"), D("1.50")), r

summary()
