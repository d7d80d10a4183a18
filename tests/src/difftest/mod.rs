//! # The differential tester
//!
//! Random schemas and data go into PostgreSQL 15 and DuetDB alike; random queries run on
//! PostgreSQL and on DuetDB with `duet.engine` = `row`, `column` and `auto`; the answers must
//! be the same (as multisets unless the query orders every output column; double precision to
//! 12 significant digits, real to 6). A statement DuetDB refuses with 0A000 is not a difference: refusing
//! is allowed, answering differently is not. Without PostgreSQL, a metamorphic oracle still
//! runs: ternary logic partitioning (`q` = `q WHERE p` ⊎ `q WHERE NOT p` ⊎
//! `q WHERE p IS NULL`) on every engine.
//!
//! Every difference is shrunk (clauses dropped, expressions replaced by their parts, rows
//! deleted) to a small reproducer, written as a sqllogictest file holding PostgreSQL's answer.
//!
//! The run is a function of its seed: the same seed replays the same schemas and queries.

pub mod ast;
pub mod gen;
pub mod known;
pub mod outcome;
mod reduce;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_postgres::{Client, NoTls};

use ast::{Body, Expr, From, Query};
use gen::{QueryGen, Schema};
use outcome::{column_types, float_digits, run, same_rows, Outcome};

/// The engines every query runs on.
pub const ENGINES: [&str; 3] = ["row", "column", "auto"];

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Stop starting new schemas after this long.
    pub duration: Duration,
    /// Stop after this many queries.
    pub max_queries: u64,
    pub queries_per_schema: usize,
    /// libpq connection string of a PostgreSQL 15 user that may create databases.
    pub postgres: Option<String>,
    /// Connection string of the DuetDB server under test.
    pub duet: String,
    /// Shrink findings (costs queries; off for a quick count).
    pub shrink: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Both answered, with different rows.
    WrongAnswer,
    /// PostgreSQL raised an error (not a 42xxx one) and DuetDB answered.
    MissingError,
    /// PostgreSQL answered and DuetDB raised an error other than 0A000.
    SpuriousError,
    /// Both raised errors with different SQLSTATEs.
    ErrorCode,
    /// PostgreSQL rejected the statement as invalid (42xxx) and DuetDB answered it.
    Lenient,
    /// Same rows, different column names.
    ColumnNames,
    /// Same rows, different column types in RowDescription.
    ColumnTypes,
    /// DuetDB did not answer at all (connection broken, no reply in time).
    Lost,
    /// Ternary logic partitioning: `q` differs from the union of its three partitions.
    Partition,
}

impl Kind {
    /// Kinds that make an answer untrustworthy (the others are shape or leniency).
    pub fn is_wrong_answer(self) -> bool {
        matches!(
            self,
            Kind::WrongAnswer | Kind::MissingError | Kind::Partition | Kind::Lost
        )
    }

    /// Kinds that fail the CI test when unexplained: wrong answers, and the shape kinds
    /// DuetDB already matches on CI's seed (output column names). Column types, spurious
    /// errors, error codes and leniency are counted and printed only, until they are zero.
    pub fn fails(self) -> bool {
        self.is_wrong_answer() || self == Kind::ColumnNames
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub kind: Kind,
    pub engine: &'static str,
    pub schema: Schema,
    pub query: Query,
    /// Whether the query orders every output column.
    pub ordered: bool,
    pub expected: Outcome,
    pub got: Outcome,
    /// The constructs of the (shrunk) query: how findings are told apart.
    pub signature: String,
    /// How many more queries failed with the same signature.
    pub repeats: u64,
    /// The known difference (an open bug, see [`known`]) this is, if any.
    pub known: Option<&'static str>,
}

impl Finding {
    /// A sqllogictest file: the tables the query reads, their rows, the query with
    /// PostgreSQL's answer.
    pub fn slt(&self) -> String {
        let sql = self.query.to_string();
        let mut s = format!(
            "# Found by the differential tester ({:?} on duet.engine = {}).\n# DuetDB answered: {}\n\n",
            self.kind,
            self.engine,
            self.got.short().replace('\n', "\n# ")
        );
        let used: Vec<_> = self
            .schema
            .tables
            .iter()
            .filter(|t| sql.contains(&format!("{} AS ", t.name)))
            .collect();
        for t in &used {
            writeln!(s, "statement ok\n{}\n", t.create()).unwrap();
            for i in t.create_indexes() {
                writeln!(s, "statement ok\n{i}\n").unwrap();
            }
            if let Some(ins) = t.insert() {
                writeln!(s, "statement ok\n{ins}\n").unwrap();
            }
        }
        match &self.expected {
            Outcome::Rows { rows, .. } => {
                let width = rows.first().map_or(1, Vec::len);
                let sort = if self.ordered { "" } else { " rowsort" };
                writeln!(s, "query {}{sort}\n{sql}\n----", "T".repeat(width)).unwrap();
                for r in rows {
                    let cells: Vec<&str> = r
                        .iter()
                        .map(|c| match c.as_deref() {
                            None => "NULL",
                            Some("") => "(empty)",
                            Some(v) => v,
                        })
                        .collect();
                    writeln!(s, "{}", cells.join(" ")).unwrap();
                }
                s.push('\n');
            }
            Outcome::Error { code, .. } => {
                writeln!(s, "statement error ({code})\n{sql}\n").unwrap();
            }
            Outcome::Lost(_) => {}
        }
        for t in &used {
            writeln!(s, "statement ok\nDROP TABLE {}\n", t.name).unwrap();
        }
        s
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub schemas: u64,
    pub queries: u64,
    /// Queries PostgreSQL and every engine answered alike.
    pub agreed: u64,
    /// Queries both rejected with the same SQLSTATE.
    pub both_failed: u64,
    /// Queries PostgreSQL did not finish (skipped).
    pub skipped: u64,
    /// Statement timeouts on DuetDB where PostgreSQL answered (slow, not wrong).
    pub timeouts: u64,
    /// 0A000 refusals by message.
    pub refused: BTreeMap<String, u64>,
    pub partition_checks: u64,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
}

impl Report {
    /// Findings of the kinds that fail CI ([`Kind::fails`]) that are not known differences.
    pub fn unexplained(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.kind.fails() && f.known.is_none())
    }

    /// A readable summary: counts, refusals, one example per finding.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "seed {}: {} schemas, {} queries in {:.0?}; agreed {}, both rejected {}, skipped {}, \
             DuetDB timeouts {}, partition checks {}\n",
            self.seed,
            self.schemas,
            self.queries,
            self.elapsed,
            self.agreed,
            self.both_failed,
            self.skipped,
            self.timeouts,
            self.partition_checks
        );
        for (msg, n) in &self.refused {
            writeln!(s, "refused (0A000) x{n}: {msg}").unwrap();
        }
        let mut kinds: BTreeMap<(Kind, Option<&str>), (usize, u64)> = BTreeMap::new();
        for f in &self.findings {
            let e = kinds.entry((f.kind, f.known)).or_default();
            e.0 += 1;
            e.1 += 1 + f.repeats;
        }
        for ((k, known), (distinct, total)) in &kinds {
            let known = known.map(|n| format!(" (known: {n})")).unwrap_or_default();
            writeln!(s, "{k:?}{known}: {distinct} distinct, {total} queries").unwrap();
        }
        for f in &self.findings {
            let known = f.known.map(|n| format!(", known: {n}")).unwrap_or_default();
            writeln!(
                s,
                "\n[{:?} on {}, x{}{known}] {}\n  PostgreSQL: {}\n  DuetDB:     {}\n  constructs: {}",
                f.kind,
                f.engine,
                f.repeats + 1,
                f.query,
                f.expected.short().replace('\n', "\n  "),
                f.got.short().replace('\n', "\n  "),
                f.signature
            )
            .unwrap();
        }
        s
    }
}

enum Verdict {
    Agree,
    BothFailed,
    Refused(String),
    Skip,
    Timeout,
    Differ(Kind),
}

fn classify(pg: &Outcome, duet: &Outcome, floats: &[u8], ordered: bool) -> Verdict {
    match (pg, duet) {
        (Outcome::Lost(_), _) => Verdict::Skip,
        (_, Outcome::Lost(_)) => Verdict::Differ(Kind::Lost),
        (_, Outcome::Error { code, message }) if code == "0A000" => {
            Verdict::Refused(generalize(message))
        }
        (Outcome::Rows { .. }, Outcome::Error { code, .. }) if code == "57014" => Verdict::Timeout,
        (
            Outcome::Rows {
                names: n1,
                rows: r1,
            },
            Outcome::Rows {
                names: n2,
                rows: r2,
            },
        ) => {
            if !same_rows(r1, r2, floats, ordered) {
                Verdict::Differ(Kind::WrongAnswer)
            } else if n1 != n2 {
                Verdict::Differ(Kind::ColumnNames)
            } else {
                Verdict::Agree
            }
        }
        (Outcome::Rows { .. }, Outcome::Error { .. }) => Verdict::Differ(Kind::SpuriousError),
        (Outcome::Error { code, .. }, Outcome::Rows { .. }) if code.starts_with("42") => {
            Verdict::Differ(Kind::Lenient)
        }
        (Outcome::Error { .. }, Outcome::Rows { .. }) => Verdict::Differ(Kind::MissingError),
        (Outcome::Error { code: a, .. }, Outcome::Error { code: b, .. }) if a == b => {
            Verdict::BothFailed
        }
        (Outcome::Error { .. }, Outcome::Error { .. }) => Verdict::Differ(Kind::ErrorCode),
    }
}

/// A refusal message with the run's aliases taken out, so equal refusals count together.
fn generalize(message: &str) -> String {
    let mut out = String::new();
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c.is_ascii_alphabetic() && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('N');
        }
    }
    out.chars().take(160).collect()
}

/// The constructs a query uses, sorted: a finding's signature.
pub fn constructs(q: &Query) -> String {
    let mut set = std::collections::BTreeSet::new();
    walk_query(q, &mut set);
    set.into_iter().collect::<Vec<_>>().join(" ")
}

fn walk_query(q: &Query, set: &mut std::collections::BTreeSet<String>) {
    if !q.with.is_empty() {
        set.insert("WITH".into());
    }
    for (_, c) in &q.with {
        walk_query(c, set);
    }
    if !q.order_by.is_empty() {
        set.insert("ORDER BY".into());
    }
    if q.limit.is_some() || q.offset.is_some() {
        set.insert("LIMIT/OFFSET".into());
    }
    walk_body(&q.body, set);
}

fn walk_body(b: &Body, set: &mut std::collections::BTreeSet<String>) {
    match b {
        Body::Select(s) => {
            if s.distinct {
                set.insert("DISTINCT".into());
            }
            if !s.group_by.is_empty() {
                set.insert("GROUP BY".into());
            }
            if s.having.is_some() {
                set.insert("HAVING".into());
            }
            if s.from.len() > 1 {
                set.insert("FROM a, b".into());
            }
            for f in &s.from {
                walk_from(f, set);
            }
            let exprs = s
                .items
                .iter()
                .map(|(e, _)| e)
                .chain(&s.filter)
                .chain(&s.having)
                .chain(&s.group_by);
            for e in exprs {
                walk_expr(e, set);
            }
        }
        Body::SetOp {
            left,
            op,
            all,
            right,
        } => {
            set.insert(format!("{op}{}", if *all { " ALL" } else { "" }));
            walk_body(left, set);
            walk_body(right, set);
        }
        Body::Values(_) => {
            set.insert("VALUES".into());
        }
    }
}

fn walk_from(f: &From, set: &mut std::collections::BTreeSet<String>) {
    match f {
        From::Table { .. } => {}
        From::Derived { query, .. } => {
            set.insert("derived table".into());
            walk_query(query, set);
        }
        From::Join {
            left,
            kind,
            right,
            on,
        } => {
            set.insert(kind.to_string());
            walk_from(left, set);
            walk_from(right, set);
            if let Some(e) = on {
                walk_expr(e, set);
            }
        }
    }
}

fn walk_expr(e: &Expr, set: &mut std::collections::BTreeSet<String>) {
    let name = match e {
        Expr::Col(_) | Expr::Lit(_) => None,
        Expr::Null(_) => Some("NULL".to_string()),
        Expr::Prefix(op, _) | Expr::Postfix(_, op) | Expr::Binary(_, op, _) => Some(op.to_string()),
        Expr::Func(f, _) => Some(format!("{f}()")),
        Expr::Cast(_, t) => Some(format!("CAST AS {t}")),
        Expr::Case(..) => Some("CASE".into()),
        Expr::Between { .. } => Some("BETWEEN".into()),
        Expr::InList { .. } => Some("IN (list)".into()),
        Expr::Like { .. } => Some("LIKE".into()),
        Expr::Agg {
            name,
            distinct,
            filter,
            ..
        } => Some(format!(
            "{name}({}){}",
            if *distinct { "DISTINCT" } else { "" },
            if filter.is_some() { " FILTER" } else { "" }
        )),
        Expr::Window { .. } => Some("OVER".into()),
        Expr::Subquery(_) => Some("scalar subquery".into()),
        Expr::Exists { .. } => Some("EXISTS".into()),
        Expr::InSubquery { .. } => Some("IN (subquery)".into()),
        Expr::Quantified { all, .. } => Some(if *all { "ALL" } else { "ANY" }.into()),
    };
    set.extend(name);
    let mut copy = e.clone();
    for c in copy.children_mut() {
        walk_expr(c, set);
    }
    if let Some(q) = e.subquery() {
        walk_query(q, set);
    }
}

impl Expr {
    fn subquery(&self) -> Option<&Query> {
        match self {
            Expr::Subquery(q)
            | Expr::Exists { query: q, .. }
            | Expr::InSubquery { query: q, .. }
            | Expr::Quantified { query: q, .. } => Some(q),
            _ => None,
        }
    }
}

async fn connect(conn: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Client-side backstop beyond the server-side statement_timeout.
const BACKSTOP: Duration = Duration::from_secs(60);

struct Tester {
    cfg: Config,
    pg: Option<Client>,
    duet: Vec<(&'static str, Client)>,
    report: Report,
}

impl Tester {
    async fn open_duet(conn: &str, engine: &str) -> anyhow::Result<Client> {
        let c = connect(conn).await?;
        c.batch_execute(&format!(
            "SET duet.engine = '{engine}'; SET statement_timeout = '10s'; \
             SET duet.learner_wait_timeout = '30s'"
        ))
        .await?;
        Ok(c)
    }

    /// Runs setup statements on every database; an error on one is a finding of its own.
    async fn exec_all(&mut self, stmts: &[String]) -> anyhow::Result<()> {
        for sql in stmts {
            if let Some(pg) = &self.pg {
                pg.batch_execute(sql)
                    .await
                    .map_err(|e| anyhow::anyhow!("PostgreSQL: {sql}: {e}"))?;
            }
            // A statement that broke a session (a server fault) must not stop the run.
            self.heal().await?;
            let (_, duet) = &self.duet[0];
            duet.batch_execute(sql)
                .await
                .map_err(|e| anyhow::anyhow!("DuetDB: {sql}: {e}"))?;
        }
        Ok(())
    }

    /// Reconnects any DuetDB session that broke (a lost statement may leave it unusable).
    async fn heal(&mut self) -> anyhow::Result<()> {
        for (engine, client) in &mut self.duet {
            if client.is_closed() {
                *client = Self::open_duet(&self.cfg.duet, engine).await?;
            }
        }
        Ok(())
    }

    /// PostgreSQL's answer and the float columns of its result.
    async fn expected(&self, sql: &str) -> Option<(Outcome, Vec<u8>)> {
        let pg = self.pg.as_ref()?;
        let out = run(pg, sql, BACKSTOP).await;
        let floats = match &out {
            Outcome::Rows { .. } => column_types(pg, sql)
                .await
                .map(|t| t.iter().map(float_digits).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Some((out, floats))
    }

    /// How `engine` differs from PostgreSQL on `q`, if it does: the kind and the known
    /// difference it is (so shrinking never trades a new bug for a known one).
    async fn differs(
        &mut self,
        engine: usize,
        q: &Query,
        ordered: bool,
    ) -> Option<(Kind, Option<&'static str>)> {
        self.heal().await.ok()?;
        let sql = q.to_string();
        let (expected, floats) = self.expected(&sql).await?;
        let got = run(&self.duet[engine].1, &sql, BACKSTOP).await;
        let Verdict::Differ(kind) = classify(&expected, &got, &floats, ordered) else {
            return None;
        };
        let f = Finding {
            kind,
            engine: self.duet[engine].0,
            schema: Schema::default(),
            query: q.clone(),
            ordered,
            expected,
            got,
            signature: String::new(),
            repeats: 0,
            known: None,
        };
        Some((kind, known::explain(&f).map(|k| k.name)))
    }

    async fn check(&mut self, schema: &Schema, q: &Query, ordered: bool) -> anyhow::Result<()> {
        self.report.queries += 1;
        let sql = q.to_string();
        let Some((pg, floats)) = self.expected(&sql).await else {
            return Ok(());
        };
        let mut all_agree = true;
        let mut failed = false;
        for i in 0..self.duet.len() {
            self.heal().await?;
            let got = run(&self.duet[i].1, &sql, BACKSTOP).await;
            match classify(&pg, &got, &floats, ordered) {
                Verdict::Agree => {}
                Verdict::BothFailed => failed = true,
                Verdict::Skip => {
                    self.report.skipped += 1;
                    return Ok(());
                }
                Verdict::Timeout => {
                    self.report.timeouts += 1;
                    all_agree = false;
                }
                Verdict::Refused(msg) => {
                    *self.report.refused.entry(msg).or_default() += 1;
                    all_agree = false;
                }
                Verdict::Differ(_) => {
                    all_agree = false;
                    self.heal().await?;
                    let what = self.differs(i, q, ordered).await;
                    if let Some(what) = what {
                        self.record(what, i, schema, q, ordered).await?;
                    }
                    // One finding per query: the other engines usually differ the same way.
                    break;
                }
            }
        }
        if all_agree && failed {
            self.report.both_failed += 1;
        } else if all_agree {
            self.report.agreed += 1;
            if let Outcome::Rows { .. } = pg {
                self.compare_types(schema, q, ordered, &sql).await?;
            }
        }
        Ok(())
    }

    /// RowDescription types as PostgreSQL describes them.
    async fn compare_types(
        &mut self,
        schema: &Schema,
        q: &Query,
        ordered: bool,
        sql: &str,
    ) -> anyhow::Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        let expected = column_types(pg, sql).await;
        let got = column_types(&self.duet[0].1, sql).await;
        if let (Some(e), Some(g)) = (&expected, &got) {
            if e != g {
                let show = |t: &[tokio_postgres::types::Type]| Outcome::Rows {
                    names: t.iter().map(|t| t.name().to_string()).collect(),
                    rows: Vec::new(),
                };
                self.push(Finding {
                    kind: Kind::ColumnTypes,
                    engine: self.duet[0].0,
                    schema: schema.clone(),
                    query: q.clone(),
                    ordered,
                    expected: show(e),
                    got: show(g),
                    signature: format!(
                        "{:?} vs {:?}",
                        e.iter().map(|t| t.name()).collect::<Vec<_>>(),
                        g.iter().map(|t| t.name()).collect::<Vec<_>>()
                    ),
                    repeats: 0,
                    known: None,
                });
            }
        }
        Ok(())
    }

    fn push(&mut self, mut f: Finding) {
        f.known = known::explain(&f).map(|k| k.name);
        if let Some(same) = self
            .report
            .findings
            .iter_mut()
            .find(|x| x.kind == f.kind && x.signature == f.signature && x.known == f.known)
        {
            same.repeats += 1;
        } else {
            self.report.findings.push(f);
        }
    }

    async fn record(
        &mut self,
        what: (Kind, Option<&'static str>),
        engine: usize,
        schema: &Schema,
        q: &Query,
        ordered: bool,
    ) -> anyhow::Result<()> {
        let kind = what.0;
        let mut query = q.clone();
        let mut schema = schema.clone();
        let mut ordered = ordered;
        // Column names and types are compared without shrinking: the first example of a
        // name pair stands for the rest.
        let shrinkable = !matches!(kind, Kind::ColumnNames | Kind::Lost);
        if self.cfg.shrink && shrinkable {
            query = self.shrink_query(what, engine, query, ordered).await;
            // Shrinking may have dropped the ORDER BY: then rows compare as a multiset.
            ordered = ordered && !query.order_by.is_empty();
            schema = self
                .shrink_rows(what, engine, schema, &query, ordered)
                .await?;
        }
        let sql = query.to_string();
        self.heal().await?;
        let expected = self.expected(&sql).await.map(|(o, _)| o).unwrap();
        let got = run(&self.duet[engine].1, &sql, BACKSTOP).await;
        let signature = match (&kind, &expected, &got) {
            (Kind::ColumnNames, Outcome::Rows { names: a, .. }, Outcome::Rows { names: b, .. }) => {
                name_pairs(a, b)
            }
            (Kind::ErrorCode | Kind::SpuriousError, _, Outcome::Error { code, message }) => {
                format!("{code} {}", generalize(message))
            }
            _ => constructs(&query),
        };
        self.push(Finding {
            kind,
            engine: self.duet[engine].0,
            schema,
            query,
            ordered,
            expected,
            got,
            signature,
            repeats: 0,
            known: None,
        });
        Ok(())
    }

    async fn shrink_query(
        &mut self,
        what: (Kind, Option<&'static str>),
        engine: usize,
        mut q: Query,
        ordered: bool,
    ) -> Query {
        let mut budget = 600;
        'outer: loop {
            for c in reduce::query(&q) {
                if budget == 0 {
                    break 'outer;
                }
                budget -= 1;
                // Dropping ORDER BY makes the comparison a multiset one.
                let ord = ordered && !c.order_by.is_empty();
                if self.differs(engine, &c, ord).await == Some(what) {
                    q = c;
                    continue 'outer;
                }
            }
            break;
        }
        q
    }

    /// Deletes rows while the difference persists, then puts every row back.
    async fn shrink_rows(
        &mut self,
        what: (Kind, Option<&'static str>),
        engine: usize,
        mut schema: Schema,
        q: &Query,
        ordered: bool,
    ) -> anyhow::Result<Schema> {
        let original = schema.clone();
        let sql = q.to_string();
        for t in 0..schema.tables.len() {
            if !sql.contains(&format!("{} AS ", schema.tables[t].name)) {
                continue;
            }
            let mut chunk = schema.tables[t].rows.len().div_ceil(2);
            while chunk >= 1 {
                let mut i = 0;
                while i < schema.tables[t].rows.len() {
                    let mut trial = schema.tables[t].clone();
                    let end = (i + chunk).min(trial.rows.len());
                    trial.rows.drain(i..end);
                    self.reload(&trial).await?;
                    if self.differs(engine, q, ordered).await == Some(what) {
                        schema.tables[t] = trial;
                    } else {
                        i += chunk;
                    }
                }
                chunk /= 2;
            }
            self.reload(&schema.tables[t]).await?;
        }
        for t in &original.tables {
            self.reload(t).await?;
        }
        Ok(schema)
    }

    async fn reload(&mut self, t: &gen::Table) -> anyhow::Result<()> {
        let mut stmts = vec![format!("DELETE FROM {}", t.name)];
        stmts.extend(t.insert());
        self.exec_all(&stmts).await
    }

    /// Ternary logic partitioning on DuetDB alone: a plain select's rows are the rows with
    /// `p`, with `NOT p` and with `p IS NULL`, on every engine.
    async fn partition(
        &mut self,
        schema: &Schema,
        q: &Query,
        rng: &mut StdRng,
    ) -> anyhow::Result<()> {
        let Body::Select(s) = &q.body else {
            return Ok(());
        };
        let plain = s.group_by.is_empty()
            && s.having.is_none()
            && !s.distinct
            && !s.from.is_empty()
            && !q.to_string().contains(" OVER (")
            && s.items.iter().all(|(e, _)| !has_aggregate(e));
        let Some(scope) = gen::from_scope(schema, &s.from) else {
            return Ok(());
        };
        if !plain || scope.is_empty() {
            return Ok(());
        }
        let p = QueryGen::new(rng, schema).partition_predicate(&scope);
        let with_filter = |extra: Expr| {
            let mut x = Query {
                with: q.with.clone(),
                body: q.body.clone(),
                order_by: Vec::new(),
                limit: None,
                offset: None,
            };
            if let Body::Select(s) = &mut x.body {
                s.filter = Some(match s.filter.take() {
                    Some(f) => Expr::Binary(Box::new(f), "AND", Box::new(extra)),
                    None => extra,
                });
            }
            x
        };
        let mut base = q.clone();
        base.order_by.clear();
        base.limit = None;
        base.offset = None;
        let parts = [
            with_filter(p.clone()),
            with_filter(Expr::Prefix("NOT", Box::new(p.clone()))),
            with_filter(Expr::Postfix(Box::new(p), "IS NULL")),
        ];
        self.report.partition_checks += 1;
        for i in 0..self.duet.len() {
            self.heal().await?;
            let client = &self.duet[i].1;
            let whole = run(client, &base.to_string(), BACKSTOP).await;
            let Outcome::Rows { rows, names } = &whole else {
                continue;
            };
            let mut union = Vec::new();
            let mut complete = true;
            for part in &parts {
                match run(client, &part.to_string(), BACKSTOP).await {
                    Outcome::Rows { rows, .. } => union.extend(rows),
                    _ => complete = false,
                }
            }
            // Floats: compare every column with tolerance (no types at hand; the text of a
            // non-float never parses differently).
            let floats = vec![12; names.len()];
            if complete && !same_rows(rows, &union, &floats, false) {
                let shown = parts
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ");
                self.push(Finding {
                    kind: Kind::Partition,
                    engine: self.duet[i].0,
                    schema: schema.clone(),
                    query: base.clone(),
                    ordered: false,
                    expected: whole.clone(),
                    got: Outcome::Rows {
                        names: vec![shown],
                        rows: union,
                    },
                    signature: constructs(&base),
                    repeats: 0,
                    known: None,
                });
                break;
            }
        }
        Ok(())
    }
}

fn has_aggregate(e: &Expr) -> bool {
    let sql = e.to_string();
    [
        "count(",
        "sum(",
        "avg(",
        "min(",
        "max(",
        "bool_and(",
        "bool_or(",
    ]
    .iter()
    .any(|f| sql.contains(f))
}

/// The differing output names of two results, with the run's aliases generalised.
fn name_pairs(a: &[String], b: &[String]) -> String {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("{} vs {}", generalize(x), generalize(y)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs the tester to its time or query limit.
pub async fn run_tester(cfg: Config) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut admin = None;
    let mut db = None;
    let pg = match &cfg.postgres {
        Some(conn) => {
            let a = connect(conn).await?;
            let name = format!("duet_diff_{}", std::process::id());
            a.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await?;
            a.batch_execute(&format!("CREATE DATABASE {name}")).await?;
            let c = connect(&format!("{conn} dbname={name}")).await?;
            c.batch_execute("SET statement_timeout = '10s'").await?;
            admin = Some(a);
            db = Some(name);
            Some(c)
        }
        None => None,
    };
    let mut duet = Vec::new();
    for e in ENGINES {
        duet.push((e, Tester::open_duet(&cfg.duet, e).await?));
    }
    let mut t = Tester {
        pg,
        duet,
        report: Report {
            seed: cfg.seed,
            ..Report::default()
        },
        cfg,
    };
    let mut rng = StdRng::seed_from_u64(t.cfg.seed);
    while start.elapsed() < t.cfg.duration && t.report.queries < t.cfg.max_queries {
        let mut case = StdRng::seed_from_u64(rng.gen());
        let schema = gen::schema(&mut case);
        t.exec_all(&schema.teardown()).await?;
        t.exec_all(&schema.setup()).await?;
        t.report.schemas += 1;
        for _ in 0..t.cfg.queries_per_schema {
            if t.report.queries >= t.cfg.max_queries {
                break;
            }
            let (q, ordered) = QueryGen::new(&mut case, &schema).query();
            if t.pg.is_some() {
                t.check(&schema, &q, ordered).await?;
            } else {
                t.report.queries += 1;
            }
            if case.gen_bool(0.3) {
                t.partition(&schema, &q, &mut case).await?;
            }
        }
        t.exec_all(&schema.teardown()).await?;
    }
    if let (Some(a), Some(name)) = (admin, db) {
        drop(t.pg.take());
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
    }
    t.report.elapsed = start.elapsed();
    Ok(t.report)
}
