// What a Java application does with pgjdbc, step by step (the server comes from DRIVER_HOST,
// DRIVER_PORT, DRIVER_USER, DRIVER_DB as in common.py; DRIVER_LABEL names it in the output).
// Each step prints [PASS] or [FAIL] with the SQLSTATE; the program exits 1 if one failed.
// Run: java -cp /usr/share/java/postgresql.jar tests/drivers/JdbcApp.java
// JDBC_TRACE=1 logs the driver's protocol traffic (java.util.logging, org.postgresql at FINEST).
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;
import java.util.logging.ConsoleHandler;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.postgresql.PGStatement;

public class JdbcApp {
    static String env(String k, String d) { String v = System.getenv(k); return v == null || v.isEmpty() ? d : v; }

    static final String TARGET = env("DRIVER_LABEL", "duet");
    static final String URL = "jdbc:postgresql://" + env("DRIVER_HOST", "127.0.0.1") + ":" + env("DRIVER_PORT", "5433")
            + "/" + env("DRIVER_DB", "duetdb");
    static final String USER = env("DRIVER_USER", "postgres");
    static final Timestamp TS = Timestamp.valueOf("2024-05-17 12:34:56.789");
    static int passed = 0, failed = 0;

    interface Body { void run() throws Exception; }

    static void step(String name, Body b) {
        try {
            b.run();
            passed++;
            System.out.println("[PASS] " + name);
        } catch (Throwable e) {
            failed++;
            String state = null;
            for (Throwable t = e; t != null && state == null; t = t.getCause())
                if (t instanceof SQLException) state = ((SQLException) t).getSQLState();
            System.out.println("[FAIL] " + name + ": " + e.getClass().getName() + " sqlstate=" + state + ": "
                    + String.valueOf(e.getMessage()).trim());
            if (System.getenv("TB") != null) e.printStackTrace(System.out);
        }
        System.out.flush();
    }

    static Connection conn() throws SQLException { return conn(new Properties()); }

    static Connection conn(Properties extra) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", USER);
        p.setProperty("password", env("DRIVER_PASSWORD", ""));
        p.setProperty("prepareThreshold", "5");
        p.putAll(extra);
        return DriverManager.getConnection(URL, p);
    }

    static void check(boolean ok, Object what) { if (!ok) throw new AssertionError(String.valueOf(what)); }

    static long count(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) { rs.next(); return rs.getLong(1); }
    }

    static String one(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) { rs.next(); return rs.getString(1); }
    }

    static List<Map<String, Object>> rows(ResultSet rs, String... cols) throws SQLException {
        List<Map<String, Object>> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                Map<String, Object> m = new LinkedHashMap<>();
                for (String col : cols) m.put(col, rs.getObject(col));
                out.add(m);
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (System.getenv("JDBC_TRACE") != null) {
            Logger l = Logger.getLogger("org.postgresql");
            ConsoleHandler h = new ConsoleHandler();
            h.setLevel(Level.FINEST);
            l.addHandler(h);
            l.setLevel(Level.FINEST);
        }

        step("connect + server_version", () -> {
            try (Connection c = conn()) {
                System.out.println("   server_version " + one(c, "SHOW server_version") + " / "
                        + c.unwrap(org.postgresql.PGConnection.class).getParameterStatus("server_version"));
            }
        });

        step("DatabaseMetaData.getDatabaseProductName/Version + driver version", () -> {
            try (Connection c = conn()) {
                DatabaseMetaData md = c.getMetaData();
                String v = md.getDatabaseProductVersion();
                System.out.println("   " + md.getDatabaseProductName() + " " + v + " major=" + md.getDatabaseMajorVersion()
                        + " minor=" + md.getDatabaseMinorVersion() + " driver=" + md.getDriverVersion());
                check("PostgreSQL".equals(md.getDatabaseProductName()), md.getDatabaseProductName());
                check(v != null && v.matches("\\d+(\\.\\d+)*.*"), v);
                check(md.getDatabaseMajorVersion() >= 10, md.getDatabaseMajorVersion());
            }
        });

        step("create tables (SERIAL, PRIMARY KEY, FOREIGN KEY, UNIQUE, INDEX)", () -> {
            try (Connection c = conn(); Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS jd_item");
                s.execute("DROP TABLE IF EXISTS jd_customer");
                s.execute("CREATE TABLE jd_customer (id serial PRIMARY KEY, name varchar(50) NOT NULL UNIQUE)");
                s.execute("CREATE TABLE jd_item (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2), "
                        + "created timestamp, active boolean, customer_id integer REFERENCES jd_customer (id))");
                s.execute("CREATE INDEX jd_item_name_idx ON jd_item (name)");
                s.execute("INSERT INTO jd_customer (name) VALUES ('alice'), ('bob')");
            }
        });

        step("prepared INSERT int/text/numeric/timestamp/bool x10 (past prepareThreshold=5)", () -> {
            try (Connection c = conn();
                 PreparedStatement ps = c.prepareStatement(
                         "INSERT INTO jd_item (id, name, price, created, active, customer_id) VALUES (?, ?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 10; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "item" + i);
                    ps.setBigDecimal(3, new BigDecimal(i + ".25"));
                    ps.setTimestamp(4, new Timestamp(TS.getTime() + i * 3600_000L));
                    ps.setBoolean(5, i % 2 == 0);
                    ps.setInt(6, i % 2 + 1);
                    check(ps.executeUpdate() == 1, "update count");
                }
                check(ps.unwrap(PGStatement.class).isUseServerPrepare(), "not server-prepared after 10 executions");
                check(count(c, "SELECT count(*) FROM jd_item") == 10, "count");
            }
        });

        step("batch insert (addBatch/executeBatch)", () -> {
            try (Connection c = conn();
                 PreparedStatement ps = c.prepareStatement(
                         "INSERT INTO jd_item (id, name, price, created, active) VALUES (?, ?, ?, ?, ?)")) {
                for (int i = 11; i <= 30; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "batch" + i);
                    ps.setBigDecimal(3, new BigDecimal(i + ".50"));
                    ps.setTimestamp(4, TS);
                    ps.setBoolean(5, true);
                    ps.addBatch();
                }
                int[] r = ps.executeBatch();
                check(r.length == 20, r.length);
                for (int x : r) check(x == 1 || x == Statement.SUCCESS_NO_INFO, Arrays.toString(r));
                check(count(c, "SELECT count(*) FROM jd_item") == 30, "count");
            }
        });

        step("batch insert with reWriteBatchedInserts=true", () -> {
            Properties p = new Properties();
            p.setProperty("reWriteBatchedInserts", "true");
            try (Connection c = conn(p);
                 PreparedStatement ps = c.prepareStatement("INSERT INTO jd_item (id, name, price) VALUES (?, ?, ?)")) {
                for (int i = 31; i <= 40; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "rw" + i);
                    ps.setBigDecimal(3, BigDecimal.valueOf(i));
                    ps.addBatch();
                }
                ps.executeBatch();
                check(count(c, "SELECT count(*) FROM jd_item WHERE name LIKE 'rw%'") == 10, "count");
            }
        });

        step("query with setters (bool/numeric/timestamp/text), types roundtrip", () -> {
            try (Connection c = conn();
                 PreparedStatement ps = c.prepareStatement(
                         "SELECT id, name, price, created, active FROM jd_item WHERE active = ? AND price > ? AND created >= ? "
                                 + "AND name LIKE ? ORDER BY id")) {
                ps.setBoolean(1, true);
                ps.setBigDecimal(2, new BigDecimal("5"));
                ps.setTimestamp(3, TS);
                ps.setString(4, "item%");
                List<Integer> ids = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        int id = rs.getInt("id");
                        ids.add(id);
                        check(rs.getString(2).equals("item" + id), rs.getString(2));
                        check(rs.getBigDecimal(3).equals(new BigDecimal(id + ".25")), rs.getBigDecimal(3));
                        check(rs.getTimestamp(4).equals(new Timestamp(TS.getTime() + id * 3600_000L)), rs.getTimestamp(4));
                        check(rs.getBoolean(5), "active");
                    }
                }
                check(ids.equals(List.of(6, 8, 10)), ids);
            }
        });

        step("same SELECT x10 (server-prepared, binary results)", () -> {
            try (Connection c = conn();
                 PreparedStatement ps = c.prepareStatement(
                         "SELECT i.name, i.price, i.created, c.name FROM jd_item i JOIN jd_customer c ON c.id = i.customer_id WHERE i.id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "no row for " + i);
                        check(rs.getString(1).equals("item" + i), rs.getString(1));
                        check(rs.getBigDecimal(2).equals(new BigDecimal(i + ".25")), rs.getBigDecimal(2));
                        check(rs.getTimestamp(3).equals(new Timestamp(TS.getTime() + i * 3600_000L)), rs.getTimestamp(3));
                        check(rs.getString(4).equals(i % 2 == 0 ? "alice" : "bob"), rs.getString(4));
                    }
                }
                check(ps.unwrap(PGStatement.class).isUseServerPrepare(), "not server-prepared");
            }
        });

        step("transaction: commit, rollback, savepoint rollback + release", () -> {
            try (Connection c = conn(); Statement s = c.createStatement()) {
                c.setAutoCommit(false);
                s.executeUpdate("UPDATE jd_item SET name = 'committed' WHERE id = 1");
                c.commit();
                s.executeUpdate("UPDATE jd_item SET name = 'rolledback' WHERE id = 2");
                c.rollback();
                s.executeUpdate("UPDATE jd_item SET name = 'outer' WHERE id = 3");
                Savepoint sp = c.setSavepoint("sp1");
                s.executeUpdate("UPDATE jd_item SET name = 'inner' WHERE id = 4");
                c.rollback(sp);
                Savepoint sp2 = c.setSavepoint();
                s.executeUpdate("UPDATE jd_item SET name = 'inner2' WHERE id = 5");
                c.releaseSavepoint(sp2);
                c.commit();
                c.setAutoCommit(true);
                List<Map<String, Object>> got = rows(s.executeQuery("SELECT id, name FROM jd_item WHERE id <= 5 ORDER BY id"), "id", "name");
                List<String> names = new ArrayList<>();
                for (Map<String, Object> m : got) names.add((String) m.get("name"));
                check(names.equals(List.of("committed", "item2", "outer", "item4", "inner2")), names);
            }
        });

        step("transaction: unique violation inside savepoint, rollback to it, continue", () -> {
            try (Connection c = conn()) {
                c.setAutoCommit(false);
                Savepoint sp = c.setSavepoint();
                try (PreparedStatement ps = c.prepareStatement("INSERT INTO jd_item (id, name) VALUES (?, ?)")) {
                    ps.setInt(1, 1);
                    ps.setString(2, "dup");
                    ps.executeUpdate();
                    throw new AssertionError("expected unique violation");
                } catch (SQLException e) {
                    check("23505".equals(e.getSQLState()), e.getSQLState());
                    c.rollback(sp);
                }
                try (Statement s = c.createStatement()) { s.executeUpdate("UPDATE jd_item SET name = 'after' WHERE id = 6"); }
                c.commit();
                check("after".equals(one(c, "SELECT name FROM jd_item WHERE id = 6")), "after");
            }
        });

        step("DatabaseMetaData.getTables", () -> {
            try (Connection c = conn()) {
                List<Map<String, Object>> t = rows(c.getMetaData().getTables(null, "public", "jd_%", new String[]{"TABLE"}),
                        "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE");
                List<String> names = new ArrayList<>();
                for (Map<String, Object> m : t) names.add((String) m.get("TABLE_NAME"));
                check(names.equals(List.of("jd_customer", "jd_item")), t);
                check("TABLE".equals(t.get(0).get("TABLE_TYPE")) && "public".equals(t.get(0).get("TABLE_SCHEM")), t);
            }
        });

        step("DatabaseMetaData.getColumns", () -> {
            try (Connection c = conn()) {
                List<Map<String, Object>> cols = rows(c.getMetaData().getColumns(null, "public", "jd_item", null),
                        "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS", "IS_NULLABLE", "ORDINAL_POSITION");
                List<String> desc = new ArrayList<>();
                for (Map<String, Object> m : cols) desc.add(m.get("COLUMN_NAME") + ":" + m.get("TYPE_NAME") + ":" + m.get("DATA_TYPE"));
                check(desc.equals(List.of("id:int4:4", "name:text:12", "price:numeric:2", "created:timestamp:93",
                        "active:bool:-7", "customer_id:int4:4")), desc);
                check(((Number) cols.get(2).get("COLUMN_SIZE")).intValue() == 10
                        && ((Number) cols.get(2).get("DECIMAL_DIGITS")).intValue() == 2, cols.get(2));
                check("NO".equals(cols.get(1).get("IS_NULLABLE")) && "YES".equals(cols.get(2).get("IS_NULLABLE")), cols);
                List<Map<String, Object>> cc = rows(c.getMetaData().getColumns(null, "public", "jd_customer", "%"),
                        "COLUMN_NAME", "TYPE_NAME", "COLUMN_SIZE", "IS_AUTOINCREMENT", "COLUMN_DEF");
                check("serial".equals(cc.get(0).get("TYPE_NAME")) && "YES".equals(cc.get(0).get("IS_AUTOINCREMENT")), cc.get(0));
                check("varchar".equals(cc.get(1).get("TYPE_NAME")) && ((Number) cc.get(1).get("COLUMN_SIZE")).intValue() == 50, cc.get(1));
            }
        });

        step("DatabaseMetaData.getPrimaryKeys", () -> {
            try (Connection c = conn()) {
                List<Map<String, Object>> pk = rows(c.getMetaData().getPrimaryKeys(null, "public", "jd_item"),
                        "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME");
                check(pk.size() == 1 && "id".equals(pk.get(0).get("COLUMN_NAME"))
                        && ((Number) pk.get(0).get("KEY_SEQ")).intValue() == 1 && "jd_item_pkey".equals(pk.get(0).get("PK_NAME")), pk);
            }
        });

        step("DatabaseMetaData.getImportedKeys", () -> {
            try (Connection c = conn()) {
                List<Map<String, Object>> fk = rows(c.getMetaData().getImportedKeys(null, "public", "jd_item"),
                        "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "KEY_SEQ", "FK_NAME");
                check(fk.size() == 1, fk);
                Map<String, Object> f = fk.get(0);
                check("jd_customer".equals(f.get("PKTABLE_NAME")) && "id".equals(f.get("PKCOLUMN_NAME"))
                        && "jd_item".equals(f.get("FKTABLE_NAME")) && "customer_id".equals(f.get("FKCOLUMN_NAME")), f);
            }
        });

        step("DatabaseMetaData.getIndexInfo", () -> {
            try (Connection c = conn()) {
                List<Map<String, Object>> ix = rows(c.getMetaData().getIndexInfo(null, "public", "jd_item", false, false),
                        "INDEX_NAME", "NON_UNIQUE", "COLUMN_NAME", "ORDINAL_POSITION");
                Map<String, String> got = new TreeMap<>();
                for (Map<String, Object> m : ix) got.put((String) m.get("INDEX_NAME"), m.get("COLUMN_NAME") + ":" + m.get("NON_UNIQUE"));
                check(got.equals(Map.of("jd_item_pkey", "id:false", "jd_item_name_idx", "name:true")), ix);
                List<Map<String, Object>> uq = rows(c.getMetaData().getIndexInfo(null, "public", "jd_customer", true, false),
                        "INDEX_NAME", "COLUMN_NAME");
                check(uq.size() == 2, uq);
            }
        });

        System.out.println("== " + TARGET + ": " + passed + "/" + (passed + failed) + " steps passed");
        System.exit(failed > 0 ? 1 : 0);
    }
}
