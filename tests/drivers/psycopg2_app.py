# What an application does with psycopg2, step by step (see common.py for the server).
import datetime, decimal, io
import psycopg2, psycopg2.extras, psycopg2.errors
from common import DSN, step, summary

D = decimal.Decimal
TS = datetime.datetime(2024, 5, 17, 12, 34, 56, 789000)
ROWS = [(i, f"name{i}", D(f"{i}.25"), TS + datetime.timedelta(hours=i), i % 2 == 0) for i in range(1, 21)]

def conn():
    return psycopg2.connect(DSN)

@step("connect + server_version")
def _():
    c = conn(); print("   server_version", c.server_version); c.close()

@step("create table with PRIMARY KEY")
def _():
    c = conn(); cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS p2_items")
    cur.execute("CREATE TABLE p2_items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2), created timestamp, active boolean)")
    c.commit(); c.close()

@step("executemany insert int/text/numeric/timestamp/bool")
def _():
    c = conn(); cur = c.cursor()
    cur.executemany("INSERT INTO p2_items (id, name, price, created, active) VALUES (%s, %s, %s, %s, %s)", ROWS[:10])
    c.commit()
    cur.execute("SELECT count(*) FROM p2_items"); assert cur.fetchone()[0] == 10
    c.close()

@step("execute_values insert")
def _():
    c = conn(); cur = c.cursor()
    psycopg2.extras.execute_values(cur, "INSERT INTO p2_items (id, name, price, created, active) VALUES %s", ROWS[10:])
    c.commit()
    cur.execute("SELECT count(*) FROM p2_items"); assert cur.fetchone()[0] == 20
    c.close()

@step("execute_values with RETURNING (fetch=True)")
def _():
    c = conn(); cur = c.cursor()
    r = psycopg2.extras.execute_values(cur, "INSERT INTO p2_items (id, name) VALUES %s RETURNING id", [(101, "a"), (102, "b")], fetch=True)
    assert sorted(x[0] for x in r) == [101, 102], r
    c.rollback(); c.close()

@step("execute_batch")
def _():
    c = conn(); cur = c.cursor()
    psycopg2.extras.execute_batch(cur, "UPDATE p2_items SET active = %s WHERE id = %s", [(True, i) for i in range(1, 6)])
    c.commit(); c.close()

@step("select with params, types roundtrip")
def _():
    c = conn(); cur = c.cursor()
    cur.execute("SELECT id, name, price, created, active FROM p2_items WHERE id = %s", (12,))
    r = cur.fetchone(); assert r == ROWS[11], (r, ROWS[11])
    cur.execute("SELECT count(*) FROM p2_items WHERE name LIKE %(pat)s AND price >= %(p)s", {"pat": "name1%", "p": D("10")})
    assert cur.fetchone()[0] == 10
    c.close()

@step("RealDictCursor")
def _():
    c = conn(); cur = c.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    cur.execute("SELECT id, name FROM p2_items WHERE id = %s", (1,))
    assert cur.fetchone() == {"id": 1, "name": "name1"}
    c.close()

@step("transaction commit/rollback")
def _():
    c = conn(); cur = c.cursor()
    cur.execute("UPDATE p2_items SET name = 'rb' WHERE id = 2"); c.rollback()
    cur.execute("SELECT name FROM p2_items WHERE id = 2"); assert cur.fetchone()[0] == "name2"
    with c:
        with c.cursor() as cur2:
            cur2.execute("UPDATE p2_items SET name = 'cm' WHERE id = 3")
    cur.execute("SELECT name FROM p2_items WHERE id = 3"); assert cur.fetchone()[0] == "cm"
    c.close()

@step("SAVEPOINT / ROLLBACK TO SAVEPOINT / RELEASE")
def _():
    c = conn(); cur = c.cursor()
    cur.execute("UPDATE p2_items SET name = 'outer' WHERE id = 4")
    cur.execute("SAVEPOINT sp1")
    try:
        cur.execute("INSERT INTO p2_items (id, name) VALUES (1, 'dup')")
    except psycopg2.errors.UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT sp1")
    cur.execute("SAVEPOINT sp2"); cur.execute("RELEASE SAVEPOINT sp2")
    c.commit()
    cur.execute("SELECT name FROM p2_items WHERE id = 4"); assert cur.fetchone()[0] == "outer"
    c.close()

@step("set_session(isolation_level=SERIALIZABLE, readonly)")
def _():
    c = conn(); c.set_session(isolation_level="SERIALIZABLE", readonly=True)
    cur = c.cursor(); cur.execute("SELECT count(*) FROM p2_items"); cur.fetchone(); c.commit(); c.close()

@step("autocommit + isolation level REPEATABLE READ")
def _():
    c = conn(); c.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
    cur = c.cursor(); cur.execute("SELECT 1"); c.commit()
    c.autocommit = True; cur.execute("SELECT 1"); c.close()

@step("named (server-side) cursor")
def _():
    c = conn(); cur = c.cursor("p2cur")
    cur.execute("SELECT id FROM p2_items ORDER BY id")
    assert len(cur.fetchmany(5)) == 5
    c.close()

@step("copy_expert FROM STDIN csv / copy_to")
def _():
    c = conn(); cur = c.cursor()
    cur.execute("DROP TABLE IF EXISTS p2_copy")
    cur.execute("CREATE TABLE p2_copy (id integer PRIMARY KEY, name text, price numeric)")
    buf = io.StringIO("".join(f"{i},n{i},{i}.5\n" for i in range(1, 11)))
    cur.copy_expert("COPY p2_copy (id, name, price) FROM STDIN WITH (FORMAT csv)", buf)
    c.commit()
    out = io.StringIO(); cur.copy_to(out, "p2_copy", columns=("id", "name"))
    assert out.getvalue().count("\n") == 10, out.getvalue()
    c.close()

@step("copy_from (text)")
def _():
    c = conn(); cur = c.cursor()
    buf = io.StringIO("".join(f"{i}\tn{i}\t{i}.5\n" for i in range(11, 16)))
    cur.copy_from(buf, "p2_copy", columns=("id", "name", "price"))
    c.commit(); cur.execute("SELECT count(*) FROM p2_copy"); assert cur.fetchone()[0] == 15
    c.close()

summary()
