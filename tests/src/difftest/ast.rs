//! The queries the differential tester writes, as a tree it can print and shrink.

use std::fmt::{self, Display, Formatter, Write};

/// The type families the generator reasons in (each maps to several SQL types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Int,
    Numeric,
    Float,
    Text,
    Bool,
    Date,
    Timestamp,
    Time,
    Interval,
}

impl Ty {
    pub const ALL: [Ty; 9] = [
        Ty::Int,
        Ty::Numeric,
        Ty::Float,
        Ty::Text,
        Ty::Bool,
        Ty::Date,
        Ty::Timestamp,
        Ty::Time,
        Ty::Interval,
    ];

    /// The SQL type a typed NULL or a cast to this family names.
    pub fn sql(self) -> &'static str {
        match self {
            Ty::Int => "integer",
            Ty::Numeric => "numeric",
            Ty::Float => "double precision",
            Ty::Text => "text",
            Ty::Bool => "boolean",
            Ty::Date => "date",
            Ty::Timestamp => "timestamp",
            Ty::Time => "time",
            Ty::Interval => "interval",
        }
    }

    /// Whether `<`, `>`, `min` and `max` apply (every family here is ordered).
    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Numeric | Ty::Float)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A column reference, already qualified (`a3.c1`).
    Col(String),
    /// A literal as SQL text (`42`, `'abc'`, `DATE '2024-02-29'`).
    Lit(String),
    /// `CAST(NULL AS type)`.
    Null(Ty),
    /// A prefix operator: `-`, `NOT`.
    Prefix(&'static str, Box<Expr>),
    Binary(Box<Expr>, &'static str, Box<Expr>),
    /// A postfix predicate: `IS NULL`, `IS NOT NULL`, `IS TRUE`, ...
    Postfix(Box<Expr>, &'static str),
    Func(&'static str, Vec<Expr>),
    Cast(Box<Expr>, &'static str),
    Case(Vec<(Expr, Expr)>, Option<Box<Expr>>),
    Between {
        e: Box<Expr>,
        not: bool,
        lo: Box<Expr>,
        hi: Box<Expr>,
    },
    InList {
        e: Box<Expr>,
        not: bool,
        list: Vec<Expr>,
    },
    Like {
        e: Box<Expr>,
        not: bool,
        pattern: Box<Expr>,
    },
    /// An aggregate; `count(*)` has no arguments.
    Agg {
        name: &'static str,
        distinct: bool,
        args: Vec<Expr>,
        filter: Option<Box<Expr>>,
    },
    /// `func OVER (PARTITION BY ... ORDER BY ...)`; `func` is an `Agg` or a `Func`.
    Window {
        func: Box<Expr>,
        partition: Vec<Expr>,
        order: Vec<OrderItem>,
    },
    Subquery(Box<Query>),
    Exists {
        not: bool,
        query: Box<Query>,
    },
    InSubquery {
        e: Box<Expr>,
        not: bool,
        query: Box<Query>,
    },
    /// `e op ANY (query)` / `e op ALL (query)`.
    Quantified {
        e: Box<Expr>,
        op: &'static str,
        all: bool,
        query: Box<Query>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrderItem {
    pub key: OrderKey,
    pub desc: bool,
    /// `Some(true)` = NULLS FIRST, `Some(false)` = NULLS LAST, `None` = the default.
    pub nulls_first: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OrderKey {
    /// `ORDER BY 2`: an output column, 1-based.
    Position(usize),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub with: Vec<(String, Query)>,
    pub body: Body,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Select(Box<Select>),
    SetOp {
        left: Box<Body>,
        op: &'static str,
        all: bool,
        right: Box<Body>,
    },
    Values(Vec<Vec<Expr>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    pub distinct: bool,
    /// Output expressions with their alias, if any.
    pub items: Vec<(Expr, Option<String>)>,
    pub from: Vec<From>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum From {
    Table {
        name: String,
        alias: String,
    },
    Derived {
        query: Box<Query>,
        alias: String,
        columns: Vec<String>,
    },
    Join {
        left: Box<From>,
        kind: &'static str,
        right: Box<From>,
        on: Option<Expr>,
    },
}

impl Query {
    pub fn select(s: Select) -> Query {
        Query {
            with: Vec::new(),
            body: Body::Select(Box::new(s)),
            order_by: Vec::new(),
            limit: None,
            offset: None,
        }
    }
}

fn list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    Ok(())
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Col(c) => f.write_str(c),
            Expr::Lit(l) => f.write_str(l),
            Expr::Null(t) => write!(f, "CAST(NULL AS {})", t.sql()),
            Expr::Prefix(op, e) => write!(f, "({op} {e})"),
            Expr::Binary(l, op, r) => write!(f, "({l} {op} {r})"),
            Expr::Postfix(e, op) => write!(f, "({e} {op})"),
            Expr::Func(name, args) => {
                write!(f, "{name}(")?;
                list(f, args)?;
                f.write_char(')')
            }
            Expr::Cast(e, t) => write!(f, "CAST({e} AS {t})"),
            Expr::Case(arms, otherwise) => {
                f.write_str("CASE")?;
                for (when, then) in arms {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " ELSE {e}")?;
                }
                f.write_str(" END")
            }
            Expr::Between { e, not, lo, hi } => {
                let not = if *not { "NOT " } else { "" };
                write!(f, "({e} {not}BETWEEN {lo} AND {hi})")
            }
            Expr::InList { e, not, list: l } => {
                let not = if *not { "NOT " } else { "" };
                write!(f, "({e} {not}IN (")?;
                list(f, l)?;
                f.write_str("))")
            }
            Expr::Like { e, not, pattern } => {
                let not = if *not { "NOT " } else { "" };
                write!(f, "({e} {not}LIKE {pattern})")
            }
            Expr::Agg {
                name,
                distinct,
                args,
                filter,
            } => {
                write!(f, "{name}(")?;
                if args.is_empty() {
                    f.write_char('*')?;
                } else {
                    if *distinct {
                        f.write_str("DISTINCT ")?;
                    }
                    list(f, args)?;
                }
                f.write_char(')')?;
                if let Some(p) = filter {
                    write!(f, " FILTER (WHERE {p})")?;
                }
                Ok(())
            }
            Expr::Window {
                func,
                partition,
                order,
            } => {
                write!(f, "{func} OVER (")?;
                if !partition.is_empty() {
                    f.write_str("PARTITION BY ")?;
                    list(f, partition)?;
                }
                if !order.is_empty() {
                    if !partition.is_empty() {
                        f.write_char(' ')?;
                    }
                    f.write_str("ORDER BY ")?;
                    list(f, order)?;
                }
                f.write_char(')')
            }
            Expr::Subquery(q) => write!(f, "({q})"),
            Expr::Exists { not, query } => {
                let not = if *not { "NOT " } else { "" };
                write!(f, "({not}EXISTS ({query}))")
            }
            Expr::InSubquery { e, not, query } => {
                let not = if *not { "NOT " } else { "" };
                write!(f, "({e} {not}IN ({query}))")
            }
            Expr::Quantified { e, op, all, query } => {
                let q = if *all { "ALL" } else { "ANY" };
                write!(f, "({e} {op} {q} ({query}))")
            }
        }
    }
}

impl Display for OrderItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.key {
            OrderKey::Position(p) => write!(f, "{p}")?,
            OrderKey::Expr(e) => write!(f, "{e}")?,
        }
        if self.desc {
            f.write_str(" DESC")?;
        }
        match self.nulls_first {
            Some(true) => f.write_str(" NULLS FIRST"),
            Some(false) => f.write_str(" NULLS LAST"),
            None => Ok(()),
        }
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if !self.with.is_empty() {
            f.write_str("WITH ")?;
            for (i, (name, q)) in self.with.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{name} AS ({q})")?;
            }
            f.write_char(' ')?;
        }
        write!(f, "{}", self.body)?;
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            list(f, &self.order_by)?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        if let Some(n) = self.offset {
            write!(f, " OFFSET {n}")?;
        }
        Ok(())
    }
}

impl Display for Body {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Body::Select(s) => write!(f, "{s}"),
            Body::SetOp {
                left,
                op,
                all,
                right,
            } => {
                let all = if *all { " ALL" } else { "" };
                write!(f, "({left}) {op}{all} ({right})")
            }
            Body::Values(rows) => {
                f.write_str("VALUES ")?;
                for (i, row) in rows.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_char('(')?;
                    list(f, row)?;
                    f.write_char(')')?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        if self.distinct {
            f.write_str("DISTINCT ")?;
        }
        for (i, (e, alias)) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{e}")?;
            if let Some(a) = alias {
                write!(f, " AS {a}")?;
            }
        }
        if !self.from.is_empty() {
            f.write_str(" FROM ")?;
            list(f, &self.from)?;
        }
        if let Some(p) = &self.filter {
            write!(f, " WHERE {p}")?;
        }
        if !self.group_by.is_empty() {
            f.write_str(" GROUP BY ")?;
            list(f, &self.group_by)?;
        }
        if let Some(p) = &self.having {
            write!(f, " HAVING {p}")?;
        }
        Ok(())
    }
}

impl Display for From {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            From::Table { name, alias } => write!(f, "{name} AS {alias}"),
            From::Derived {
                query,
                alias,
                columns,
            } => {
                write!(f, "({query}) AS {alias}(")?;
                list(f, columns)?;
                f.write_char(')')
            }
            From::Join {
                left,
                kind,
                right,
                on,
            } => {
                // A join on the right is parenthesised: `a JOIN (b JOIN c ON p) ON q`.
                if matches!(**right, From::Join { .. }) {
                    write!(f, "{left} {kind} ({right})")?;
                } else {
                    write!(f, "{left} {kind} {right}")?;
                }
                if let Some(on) = on {
                    write!(f, " ON {on}")?;
                }
                Ok(())
            }
        }
    }
}
