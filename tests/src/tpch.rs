//! TPC-H for tests and benchmarks: the schema, data from the `tpchgen` crate (dbgen's
//! output, generated in-process) loaded with `COPY … FROM STDIN`, the 22 queries with the
//! specification's validation parameters, and a result comparison with a numeric tolerance.
//!
//! The query texts in `tests/tpch/queries/` are TPC-H's (each file names its source);
//! TPC-H is Copyright Transaction Processing Performance Council.

use std::fmt::Display;

use bytes::Bytes;
use futures::SinkExt;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};

/// The eight tables in load order, with the standard column types and primary keys.
pub const SCHEMA: [(&str, &str); 8] = [
    (
        "region",
        "r_regionkey integer NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152), \
         PRIMARY KEY (r_regionkey)",
    ),
    (
        "nation",
        "n_nationkey integer NOT NULL, n_name char(25) NOT NULL, n_regionkey integer NOT NULL, \
         n_comment varchar(152), PRIMARY KEY (n_nationkey)",
    ),
    (
        "part",
        "p_partkey integer NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL, \
         p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL, \
         p_container char(10) NOT NULL, p_retailprice decimal(15,2) NOT NULL, \
         p_comment varchar(23) NOT NULL, PRIMARY KEY (p_partkey)",
    ),
    (
        "supplier",
        "s_suppkey integer NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL, \
         s_nationkey integer NOT NULL, s_phone char(15) NOT NULL, s_acctbal decimal(15,2) NOT NULL, \
         s_comment varchar(101) NOT NULL, PRIMARY KEY (s_suppkey)",
    ),
    (
        "partsupp",
        "ps_partkey integer NOT NULL, ps_suppkey integer NOT NULL, ps_availqty integer NOT NULL, \
         ps_supplycost decimal(15,2) NOT NULL, ps_comment varchar(199) NOT NULL, \
         PRIMARY KEY (ps_partkey, ps_suppkey)",
    ),
    (
        "customer",
        "c_custkey integer NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL, \
         c_nationkey integer NOT NULL, c_phone char(15) NOT NULL, c_acctbal decimal(15,2) NOT NULL, \
         c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL, PRIMARY KEY (c_custkey)",
    ),
    (
        "orders",
        "o_orderkey integer NOT NULL, o_custkey integer NOT NULL, o_orderstatus char(1) NOT NULL, \
         o_totalprice decimal(15,2) NOT NULL, o_orderdate date NOT NULL, \
         o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL, \
         o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL, PRIMARY KEY (o_orderkey)",
    ),
    (
        "lineitem",
        "l_orderkey integer NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL, \
         l_linenumber integer NOT NULL, l_quantity decimal(15,2) NOT NULL, \
         l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL, \
         l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, \
         l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL, \
         l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, \
         l_comment varchar(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber)",
    ),
];

/// `CREATE TABLE` statements for the schema (drops first).
pub fn create_statements() -> Vec<String> {
    SCHEMA
        .iter()
        .flat_map(|(t, cols)| {
            [
                format!("DROP TABLE IF EXISTS {t}"),
                format!("CREATE TABLE {t} ({cols})"),
            ]
        })
        .collect()
}

/// Rows of `table` at scale factor `sf` as COPY text with `|` as the delimiter, handed to
/// `sink` in chunks of about `chunk` bytes. dbgen's TBL lines end in a `|`, which is dropped.
/// TPC-H text never holds `|`, `\`, tabs or newlines, so no escaping is needed.
pub fn generate(table: &str, sf: f64, chunk: usize, mut sink: impl FnMut(Vec<u8>, u64)) {
    fn emit<R: Display>(
        rows: impl Iterator<Item = R>,
        chunk: usize,
        sink: &mut dyn FnMut(Vec<u8>, u64),
    ) {
        use std::io::Write;
        let mut buf = Vec::with_capacity(chunk + 1024);
        let mut n = 0u64;
        for r in rows {
            let start = buf.len();
            write!(buf, "{r}").expect("write to Vec");
            if buf.last() == Some(&b'|') && buf.len() > start {
                buf.pop();
            }
            buf.push(b'\n');
            n += 1;
            if buf.len() >= chunk {
                sink(
                    std::mem::replace(&mut buf, Vec::with_capacity(chunk + 1024)),
                    n,
                );
                n = 0;
            }
        }
        if !buf.is_empty() {
            sink(buf, n);
        }
    }
    let s: &mut dyn FnMut(Vec<u8>, u64) = &mut sink;
    match table {
        "region" => emit(RegionGenerator::new(sf, 1, 1).iter(), chunk, s),
        "nation" => emit(NationGenerator::new(sf, 1, 1).iter(), chunk, s),
        "part" => emit(PartGenerator::new(sf, 1, 1).iter(), chunk, s),
        "supplier" => emit(SupplierGenerator::new(sf, 1, 1).iter(), chunk, s),
        "partsupp" => emit(PartSuppGenerator::new(sf, 1, 1).iter(), chunk, s),
        "customer" => emit(CustomerGenerator::new(sf, 1, 1).iter(), chunk, s),
        "orders" => emit(OrderGenerator::new(sf, 1, 1).iter(), chunk, s),
        "lineitem" => emit(LineItemGenerator::new(sf, 1, 1).iter(), chunk, s),
        other => panic!("not a TPC-H table: {other}"),
    }
}

/// Creates the schema and loads every table at `sf` through `COPY … FROM STDIN` on
/// `client` (DuetDB or PostgreSQL). `progress(table, rows_so_far)` is called per chunk.
/// Returns the rows loaded per table.
pub async fn load(
    client: &tokio_postgres::Client,
    sf: f64,
    mut progress: impl FnMut(&str, u64),
) -> anyhow::Result<Vec<(String, u64)>> {
    for stmt in create_statements() {
        client.batch_execute(&stmt).await?;
    }
    let mut loaded = Vec::new();
    for (table, _) in SCHEMA {
        // Generation runs on a blocking thread, the COPY stream on this task.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<u8>, u64)>(4);
        let t = table.to_string();
        let gen = tokio::task::spawn_blocking(move || {
            generate(&t, sf, 1 << 20, |buf, n| {
                let _ = tx.blocking_send((buf, n));
            })
        });
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {table} FROM STDIN WITH (DELIMITER '|')"))
            .await?;
        futures::pin_mut!(sink);
        let mut rows = 0;
        while let Some((buf, n)) = rx.recv().await {
            sink.send(Bytes::from(buf)).await?;
            rows += n;
            progress(table, rows);
        }
        gen.await?;
        let copied = sink.finish().await?;
        anyhow::ensure!(
            copied == rows,
            "{table}: COPY reported {copied} rows, sent {rows}"
        );
        loaded.push((table.to_string(), rows));
    }
    Ok(loaded)
}

/// Writes every table at `sf` as `|`-delimited text (dbgen's TBL format without the trailing
/// `|`, the same text [`load`] sends) to `dir/<table>.tbl`. `progress(table, rows_so_far)` is
/// called per chunk. Returns the rows written per table.
pub fn write_tbl(
    dir: &std::path::Path,
    sf: f64,
    mut progress: impl FnMut(&str, u64),
) -> std::io::Result<Vec<(String, u64)>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (table, _) in SCHEMA {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{table}.tbl")))?);
        let (mut rows, mut result) = (0, Ok(()));
        generate(table, sf, 1 << 20, |buf, n| {
            if result.is_ok() {
                result = out.write_all(&buf);
                rows += n;
                progress(table, rows);
            }
        });
        result?;
        out.flush()?;
        written.push((table.to_string(), rows));
    }
    Ok(written)
}

/// The 22 queries: (number, text).
pub fn queries() -> Vec<(u32, &'static str)> {
    macro_rules! q {
        ($($n:literal),*) => {
            vec![$(($n, include_str!(concat!("../tpch/queries/q", $n, ".sql")))),*]
        };
    }
    q!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22)
}

/// A result in text form, as `simple_query` returns it: one `Vec` per row, `None` = NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// Runs `sql` with the simple protocol and returns its rows as text.
pub async fn query_text(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Rows> {
    let mut rows = Vec::new();
    for m in client.simple_query(sql).await? {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
        }
    }
    Ok(rows)
}

/// Compares two results row by row, in order. Values equal as text are equal; values that
/// both parse as numbers are equal within a relative 1e-9 or an absolute 1e-6, whichever is
/// larger (PostgreSQL's `numeric` averages carry more digits than a decimal(38,s) result).
/// Returns a description of the first difference.
pub fn compare(expected: &Rows, actual: &Rows) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "{} rows expected, {} returned; first expected {:?}, first returned {:?}",
            expected.len(),
            actual.len(),
            expected.first(),
            actual.first()
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e.len() != a.len() {
            return Err(format!(
                "row {i}: {} columns expected, {} returned",
                e.len(),
                a.len()
            ));
        }
        for (j, (ev, av)) in e.iter().zip(a).enumerate() {
            if !values_equal(ev.as_deref(), av.as_deref()) {
                return Err(format!("row {i} column {j}: expected {ev:?}, got {av:?}\n  expected row {e:?}\n  returned row {a:?}"));
            }
        }
    }
    Ok(())
}

fn values_equal(e: Option<&str>, a: Option<&str>) -> bool {
    match (e, a) {
        (None, None) => true,
        (Some(e), Some(a)) if e == a => true,
        (Some(e), Some(a)) => match (e.parse::<f64>(), a.parse::<f64>()) {
            (Ok(x), Ok(y)) => {
                let tol = (1e-9 * x.abs().max(y.abs())).max(1e-6);
                (x - y).abs() <= tol
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_lines_are_copy_text() {
        let mut out = Vec::new();
        let mut rows = 0;
        generate("nation", 1.0, 1 << 20, |b, n| {
            out.extend(b);
            rows += n;
        });
        assert_eq!(rows, 25);
        let text = String::from_utf8(out).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(first.split('|').count(), 4, "{first}");
        assert!(first.starts_with("0|ALGERIA|0|"), "{first}");
        assert!(!first.ends_with('|'));
    }

    #[test]
    fn numeric_tolerance() {
        let r = |v: &str| vec![vec![Some(v.to_string())]];
        assert!(compare(&r("25.5220058532573370"), &r("25.522005853257")).is_ok());
        assert!(compare(&r("25.52"), &r("25.53")).is_err());
        assert!(compare(&r("FRANCE"), &r("FRANCE ")).is_err());
        assert!(compare(&r("1"), &vec![]).is_err());
    }
}
