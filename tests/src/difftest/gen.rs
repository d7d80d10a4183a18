//! Random schemas, data and queries, in the manner of SQLancer and SQLsmith: every query is
//! well-typed by construction (so almost all of them run on PostgreSQL), small tables with
//! few distinct values make joins, duplicates, NULLs and ties common.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::ast::{Body, Expr, From, OrderItem, OrderKey, Query, Select, Ty};

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// The SQL type in `CREATE TABLE`.
    pub sql: &'static str,
    pub ty: Ty,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// Index of the `integer PRIMARY KEY` column, if the table has one.
    pub primary_key: Option<usize>,
    /// Columns with a secondary index.
    pub indexes: Vec<usize>,
    /// Row values as SQL literals.
    pub rows: Vec<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct Schema {
    pub tables: Vec<Table>,
}

impl Table {
    pub fn create(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pk = if self.primary_key == Some(i) {
                    " PRIMARY KEY"
                } else {
                    ""
                };
                format!("{} {}{pk}", c.name, c.sql)
            })
            .collect();
        format!("CREATE TABLE {} ({})", self.name, cols.join(", "))
    }

    pub fn create_indexes(&self) -> Vec<String> {
        self.indexes
            .iter()
            .map(|&i| {
                let c = &self.columns[i].name;
                format!("CREATE INDEX {}_{c} ON {} ({c})", self.name, self.name)
            })
            .collect()
    }

    /// One multi-row INSERT, or none for an empty table.
    pub fn insert(&self) -> Option<String> {
        if self.rows.is_empty() {
            return None;
        }
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("({})", r.join(", ")))
            .collect();
        Some(format!(
            "INSERT INTO {} VALUES {}",
            self.name,
            rows.join(", ")
        ))
    }
}

impl Schema {
    /// Statements that create and fill every table.
    pub fn setup(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tables {
            out.push(t.create());
            out.extend(t.create_indexes());
            out.extend(t.insert());
        }
        out
    }

    pub fn teardown(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {}", t.name))
            .collect()
    }
}

/// SQL column types by family.
fn sql_types(ty: Ty) -> &'static [&'static str] {
    match ty {
        Ty::Int => &["smallint", "integer", "bigint"],
        Ty::Numeric => &["numeric(10,2)", "numeric"],
        Ty::Float => &["double precision", "real"],
        Ty::Text => &["text", "varchar(8)"],
        Ty::Bool => &["boolean"],
        Ty::Date => &["date"],
        Ty::Timestamp => &["timestamp"],
        Ty::Time => &["time"],
        Ty::Interval => &["interval"],
    }
}

/// Literals of a family; boundary values come with the SQL types that hold them.
fn literal_pool(ty: Ty, sql: &str) -> Vec<String> {
    let v: &[&str] = match (ty, sql) {
        (Ty::Int, "smallint") => &[
            "0", "1", "-1", "2", "3", "7", "10", "-100", "32767", "-32768",
        ],
        (Ty::Int, "integer") => &[
            "0",
            "1",
            "-1",
            "2",
            "3",
            "7",
            "10",
            "100",
            "-100",
            "2147483647",
            "-2147483648",
        ],
        (Ty::Int, _) => &[
            "0",
            "1",
            "-1",
            "2",
            "5",
            "10",
            "1000",
            "-3",
            "9223372036854775807",
            "-9223372036854775808",
            "4294967296",
        ],
        (Ty::Numeric, _) => &[
            "0", "1.5", "-2.25", "0.01", "100.00", "3", "-0.5", "12345.67", "1.125",
        ],
        (Ty::Float, _) => &[
            "0", "1.5", "-2.25", "0.1", "1e10", "-3", "2.5", "1e-5", "100",
        ],
        (Ty::Text, _) => &[
            "''", "'a'", "'b'", "'abc'", "'A'", "'x y'", "'a%b'", "'zz'", "'Ab_c'", "' a '",
        ],
        (Ty::Bool, _) => &["true", "false"],
        (Ty::Date, _) => &[
            "'2024-02-29'",
            "'2000-01-01'",
            "'1999-12-31'",
            "'2024-03-01'",
            "'1970-01-01'",
        ],
        (Ty::Timestamp, _) => &[
            "'2024-02-29 13:14:15'",
            "'2000-01-01 00:00:00'",
            "'1999-12-31 23:59:59.5'",
            "'2024-02-29 00:00:00'",
            "'1970-01-01 12:00:00'",
        ],
        (Ty::Time, _) => &[
            "'12:30:00'",
            "'00:00:00'",
            "'23:59:59.5'",
            "'08:15:00'",
            "'24:00:00'",
            "'12:30:00.000001'",
        ],
        // `1 mon` and `30 days` are equal in PostgreSQL, and order as equals.
        (Ty::Interval, _) => &[
            "'1 day'",
            "'-2 hours'",
            "'1 mon'",
            "'30 days'",
            "'00:00:00'",
            "'1 year 2 mons 3 days 04:05:06.5'",
            "'36 hours'",
        ],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// A literal usable anywhere in an expression (typed where a bare string would be unknown).
fn expr_literal(rng: &mut StdRng, ty: Ty) -> Expr {
    let sql = match ty {
        Ty::Int => "integer",
        _ => "",
    };
    let raw = literal_pool(ty, sql).choose(rng).unwrap().clone();
    Expr::Lit(match ty {
        Ty::Numeric if !raw.contains('.') => format!("{raw}.0"),
        Ty::Numeric => raw,
        Ty::Float => format!("CAST({raw} AS double precision)"),
        Ty::Date => format!("DATE {raw}"),
        Ty::Timestamp => format!("TIMESTAMP {raw}"),
        Ty::Time => format!("TIME {raw}"),
        Ty::Interval => format!("INTERVAL {raw}"),
        _ => raw,
    })
}

pub fn schema(rng: &mut StdRng) -> Schema {
    let n = rng.gen_range(1..=3);
    let tables = (0..n)
        .map(|i| {
            let ncols = rng.gen_range(2..=5);
            let mut columns = Vec::new();
            let primary_key = rng.gen_bool(0.4).then_some(0);
            for c in 0..ncols {
                let ty = if primary_key == Some(c) {
                    Ty::Int
                } else {
                    *Ty::ALL.choose(rng).unwrap()
                };
                let sql = if primary_key == Some(c) {
                    "integer"
                } else {
                    sql_types(ty).choose(rng).unwrap()
                };
                columns.push(Column {
                    name: format!("c{c}"),
                    sql,
                    ty,
                });
            }
            // DuetDB refuses indexes on intervals (equal intervals differ in their fields).
            let indexes = (0..ncols)
                .filter(|&c| {
                    Some(c) != primary_key && columns[c].ty != Ty::Interval && rng.gen_bool(0.15)
                })
                .collect();
            let nrows = *[0usize, 1, 3, 5, 8, 12, 20].choose(rng).unwrap();
            // Few distinct values per column: duplicates, skew and join matches.
            let pools: Vec<(Vec<String>, f64)> = columns
                .iter()
                .map(|c| {
                    let mut pool = literal_pool(c.ty, c.sql);
                    pool.shuffle(rng);
                    pool.truncate(rng.gen_range(1..=pool.len().min(5)));
                    let nulls = *[0.0, 0.1, 0.3].choose(rng).unwrap();
                    (pool, nulls)
                })
                .collect();
            let rows = (0..nrows)
                .map(|r| {
                    pools
                        .iter()
                        .enumerate()
                        .map(|(c, (pool, nulls))| {
                            if primary_key == Some(c) {
                                (r as i64 * 3 - 7).to_string()
                            } else if rng.gen_bool(*nulls) {
                                "NULL".to_string()
                            } else {
                                // Skewed: the first value of the pool is the most common.
                                let i = if rng.gen_bool(0.4) {
                                    0
                                } else {
                                    rng.gen_range(0..pool.len())
                                };
                                pool[i].clone()
                            }
                        })
                        .collect()
                })
                .collect();
            Table {
                name: format!("t{i}"),
                columns,
                primary_key,
                indexes,
                rows,
            }
        })
        .collect();
    Schema { tables }
}

/// Visible columns: qualified name and family.
type Scope = Vec<(String, Ty)>;

/// What an expression may refer to.
#[derive(Clone)]
struct Ctx {
    /// Columns of this query level's FROM.
    local: Scope,
    /// Columns of enclosing queries (correlation).
    outer: Scope,
    /// Grouping keys when the select aggregates; leaves are then keys or aggregates.
    keys: Option<Vec<(Expr, Ty)>>,
}

impl Ctx {
    fn all(&self) -> Scope {
        self.local.iter().chain(&self.outer).cloned().collect()
    }

    /// The plain context an aggregate's arguments are written in.
    fn inside_aggregate(&self) -> Ctx {
        Ctx {
            keys: None,
            ..self.clone()
        }
    }
}

pub struct QueryGen<'a> {
    rng: &'a mut StdRng,
    schema: &'a Schema,
    next_alias: usize,
    /// CTEs in scope: name and column families.
    ctes: Vec<(String, Vec<Ty>)>,
    /// Nesting budget left (subqueries, derived tables, operators).
    depth: u32,
}

impl<'a> QueryGen<'a> {
    pub fn new(rng: &'a mut StdRng, schema: &'a Schema) -> Self {
        QueryGen {
            rng,
            schema,
            next_alias: 0,
            ctes: Vec::new(),
            depth: 0,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn alias(&mut self, prefix: &str) -> String {
        self.next_alias += 1;
        format!("{prefix}{}", self.next_alias)
    }

    fn pick_ty(&mut self) -> Ty {
        *Ty::ALL.choose(self.rng).unwrap()
    }

    /// A top-level query of 1 to 4 columns. Returns it and whether its ORDER BY orders every
    /// output column (then the row order is part of the answer).
    pub fn query(&mut self) -> (Query, bool) {
        self.depth = 4;
        self.ctes.clear();
        let n = self.rng.gen_range(1..=4);
        let types: Vec<Ty> = (0..n).map(|_| self.pick_ty()).collect();
        let mut with = Vec::new();
        if self.chance(0.1) {
            let k = self.rng.gen_range(1..=3);
            let cte_types: Vec<Ty> = (0..k).map(|_| self.pick_ty()).collect();
            let q = self.query_of(&cte_types, &Vec::new());
            let name = self.alias("cte");
            let cols: Vec<String> = (0..k).map(|i| format!("c{i}")).collect();
            with.push((format!("{name}({})", cols.join(", ")), q));
            self.ctes.push((name, cte_types));
        }
        let mut q = self.query_of(&types, &Vec::new());
        q.with = with;
        let mut total = self.chance(0.5);
        if total {
            let mut positions: Vec<usize> = (1..=n).collect();
            positions.shuffle(self.rng);
            q.order_by = positions
                .into_iter()
                .map(|p| self.order_item(OrderKey::Position(p)))
                .collect();
            // Intervals that compare equal print differently ('1 mon', '30 days'): their
            // order among themselves is PostgreSQL's choice, and so is what a LIMIT keeps.
            if types.contains(&Ty::Interval) {
                total = false;
            } else {
                if self.chance(0.3) {
                    q.limit = Some(self.rng.gen_range(0..6));
                }
                if self.chance(0.2) {
                    q.offset = Some(self.rng.gen_range(0..4));
                }
            }
        } else if self.chance(0.2) {
            let p = self.rng.gen_range(1..=n);
            q.order_by = vec![self.order_item(OrderKey::Position(p))];
        }
        (q, total)
    }

    fn order_item(&mut self, key: OrderKey) -> OrderItem {
        OrderItem {
            key,
            desc: self.chance(0.3),
            nulls_first: match self.rng.gen_range(0..4) {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            },
        }
    }

    fn query_of(&mut self, types: &[Ty], outer: &Scope) -> Query {
        let body = self.body_of(types, outer);
        Query {
            with: Vec::new(),
            body,
            order_by: Vec::new(),
            limit: None,
            offset: None,
        }
    }

    fn body_of(&mut self, types: &[Ty], outer: &Scope) -> Body {
        if self.depth > 1 && self.chance(0.1) {
            self.depth -= 1;
            let left = self.body_of(types, outer);
            let right = self.body_of(types, outer);
            self.depth += 1;
            let op = *["UNION", "INTERSECT", "EXCEPT"].choose(self.rng).unwrap();
            return Body::SetOp {
                left: Box::new(left),
                op,
                all: self.chance(0.5),
                right: Box::new(right),
            };
        }
        if self.chance(0.04) {
            let n = self.rng.gen_range(1..=3);
            let rows = (0..n)
                .map(|_| {
                    types
                        .iter()
                        .map(|&t| {
                            if self.chance(0.2) {
                                Expr::Null(t)
                            } else {
                                expr_literal(self.rng, t)
                            }
                        })
                        .collect()
                })
                .collect();
            return Body::Values(rows);
        }
        Body::Select(Box::new(self.select_of(types, outer, false)))
    }

    /// A select of the given column families. `one_row` asks for an aggregate without
    /// GROUP BY, as a scalar subquery needs.
    fn select_of(&mut self, types: &[Ty], outer: &Scope, one_row: bool) -> Select {
        let (from, local) = if !one_row && self.chance(0.04) {
            (Vec::new(), Vec::new())
        } else if self.chance(0.08) {
            // FROM a, b: a cross join written the old way.
            let (a, mut sa) = self.relation(outer);
            let (b, sb) = self.relation(outer);
            sa.extend(sb);
            (vec![a, b], sa)
        } else {
            let (a, sa) = self.relation(outer);
            (vec![a], sa)
        };
        let aggregate = one_row || (!local.is_empty() && self.chance(0.3));
        let keys = if aggregate && !one_row {
            let k = self.rng.gen_range(0..=2.min(local.len()));
            let mut cols = local.clone();
            cols.shuffle(self.rng);
            Some(
                cols.into_iter()
                    .take(k)
                    .map(|(c, t)| (Expr::Col(c), t))
                    .collect::<Vec<_>>(),
            )
        } else if aggregate {
            Some(Vec::new())
        } else {
            None
        };
        let ctx = Ctx {
            local,
            outer: outer.clone(),
            keys,
        };
        let items = types
            .iter()
            .map(|&t| {
                let e = if ctx.keys.is_none() && !ctx.local.is_empty() && self.chance(0.08) {
                    self.window(t, &ctx)
                } else {
                    self.expr(t, &ctx)
                };
                let alias = self.chance(0.5).then(|| self.alias("o"));
                (e, alias)
            })
            .collect();
        let plain = ctx.inside_aggregate();
        let filter =
            (!ctx.local.is_empty() && self.chance(0.6)).then(|| self.expr(Ty::Bool, &plain));
        let having = (ctx.keys.is_some() && self.chance(0.25)).then(|| self.expr(Ty::Bool, &ctx));
        Select {
            distinct: !one_row && self.chance(0.1),
            items,
            from,
            filter,
            group_by: ctx
                .keys
                .as_ref()
                .map(|k| k.iter().map(|(e, _)| e.clone()).collect())
                .unwrap_or_default(),
            having,
        }
    }

    fn table_ref(&mut self) -> (From, Scope) {
        let ncte = self.ctes.len();
        let pick = self.rng.gen_range(0..self.schema.tables.len() + ncte);
        let alias = self.alias("a");
        if pick < self.schema.tables.len() {
            let t = &self.schema.tables[pick];
            let scope = t
                .columns
                .iter()
                .map(|c| (format!("{alias}.{}", c.name), c.ty))
                .collect();
            (
                From::Table {
                    name: t.name.clone(),
                    alias,
                },
                scope,
            )
        } else {
            let (name, types) = self.ctes[pick - self.schema.tables.len()].clone();
            let scope = types
                .iter()
                .enumerate()
                .map(|(i, &t)| (format!("{alias}.c{i}"), t))
                .collect();
            (From::Table { name, alias }, scope)
        }
    }

    fn relation(&mut self, outer: &Scope) -> (From, Scope) {
        if self.depth > 1 && self.chance(0.25) {
            self.depth -= 1;
            let (left, mut sl) = self.relation(outer);
            let (right, sr) = self.relation(outer);
            self.depth += 1;
            let kind = *[
                "JOIN",
                "JOIN",
                "LEFT JOIN",
                "RIGHT JOIN",
                "FULL JOIN",
                "CROSS JOIN",
            ]
            .choose(self.rng)
            .unwrap();
            let on = match kind {
                "CROSS JOIN" => None,
                // PostgreSQL plans FULL JOIN only on merge- or hash-joinable conditions.
                "FULL JOIN" => Some(self.equi_condition(&sl, &sr)),
                _ => {
                    let ctx = Ctx {
                        local: sl.iter().chain(&sr).cloned().collect(),
                        outer: outer.clone(),
                        keys: None,
                    };
                    if self.chance(0.6) {
                        let eq = self.equi_condition(&sl, &sr);
                        if self.chance(0.3) {
                            Some(Expr::Binary(
                                Box::new(eq),
                                "AND",
                                Box::new(self.expr(Ty::Bool, &ctx)),
                            ))
                        } else {
                            Some(eq)
                        }
                    } else {
                        Some(self.expr(Ty::Bool, &ctx))
                    }
                }
            };
            sl.extend(sr);
            return (
                From::Join {
                    left: Box::new(left),
                    kind,
                    right: Box::new(right),
                    on,
                },
                sl,
            );
        }
        if self.depth > 1 && self.chance(0.12) {
            self.depth -= 1;
            let n = self.rng.gen_range(1..=3);
            let types: Vec<Ty> = (0..n).map(|_| self.pick_ty()).collect();
            // No LATERAL: a derived table sees no outer columns.
            let query = self.query_of(&types, &Vec::new());
            self.depth += 1;
            let alias = self.alias("d");
            let columns: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let scope = types
                .iter()
                .enumerate()
                .map(|(i, &t)| (format!("{alias}.c{i}"), t))
                .collect();
            return (
                From::Derived {
                    query: Box::new(query),
                    alias,
                    columns,
                },
                scope,
            );
        }
        self.table_ref()
    }

    /// `l.x = r.y` over columns of one family, or a constant-true-ish equality if none match.
    fn equi_condition(&mut self, left: &Scope, right: &Scope) -> Expr {
        let pairs: Vec<(&String, &String)> = left
            .iter()
            .flat_map(|(l, lt)| {
                right
                    .iter()
                    .filter(move |(_, rt)| rt == lt)
                    .map(move |(r, _)| (l, r))
            })
            .collect();
        match pairs.choose(self.rng) {
            Some((l, r)) => Expr::Binary(
                Box::new(Expr::Col((*l).clone())),
                "=",
                Box::new(Expr::Col((*r).clone())),
            ),
            None => {
                let (l, _) = left.choose(self.rng).unwrap().clone();
                let (r, _) = right.choose(self.rng).unwrap().clone();
                Expr::Binary(
                    Box::new(Expr::Func(
                        "length",
                        vec![Expr::Cast(Box::new(Expr::Col(l)), "text")],
                    )),
                    "=",
                    Box::new(Expr::Func(
                        "length",
                        vec![Expr::Cast(Box::new(Expr::Col(r)), "text")],
                    )),
                )
            }
        }
    }

    fn column_of(&mut self, ty: Ty, scope: &Scope) -> Option<Expr> {
        let cols: Vec<&String> = scope
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(c, _)| c)
            .collect();
        cols.choose(self.rng).map(|c| Expr::Col((*c).clone()))
    }

    fn leaf(&mut self, ty: Ty, ctx: &Ctx) -> Expr {
        if let Some(keys) = &ctx.keys {
            let matching: Vec<Expr> = keys
                .iter()
                .filter(|(_, t)| *t == ty)
                .map(|(e, _)| e.clone())
                .collect();
            if !matching.is_empty() && self.chance(0.5) {
                return matching.choose(self.rng).unwrap().clone();
            }
            if self.chance(0.75) {
                return self.aggregate(ty, ctx);
            }
            if !ctx.outer.is_empty() && self.chance(0.3) {
                if let Some(c) = self.column_of(ty, &ctx.outer) {
                    return c;
                }
            }
        } else if self.chance(0.7) {
            // Mostly this level's columns; sometimes an outer one (a correlation).
            let scope = if !ctx.outer.is_empty() && self.chance(0.25) {
                &ctx.outer
            } else {
                &ctx.local
            };
            if let Some(c) = self.column_of(ty, scope) {
                return c;
            }
        }
        if self.chance(0.08) {
            Expr::Null(ty)
        } else {
            expr_literal(self.rng, ty)
        }
    }

    fn aggregate(&mut self, ty: Ty, ctx: &Ctx) -> Expr {
        let inner = ctx.inside_aggregate();
        let (name, arg_ty): (&'static str, Option<Ty>) = match ty {
            Ty::Int => *[
                ("count", None),
                ("count", Some(self.pick_ty())),
                ("sum", Some(Ty::Int)),
                ("min", Some(Ty::Int)),
                ("max", Some(Ty::Int)),
            ]
            .choose(self.rng)
            .unwrap(),
            Ty::Numeric => *[
                ("sum", Some(Ty::Numeric)),
                ("avg", Some(Ty::Int)),
                ("avg", Some(Ty::Numeric)),
                ("min", Some(Ty::Numeric)),
                ("max", Some(Ty::Numeric)),
            ]
            .choose(self.rng)
            .unwrap(),
            Ty::Float => *[
                ("sum", Some(Ty::Float)),
                ("avg", Some(Ty::Float)),
                ("min", Some(Ty::Float)),
                ("max", Some(Ty::Float)),
            ]
            .choose(self.rng)
            .unwrap(),
            Ty::Bool => *[("bool_and", Some(Ty::Bool)), ("bool_or", Some(Ty::Bool))]
                .choose(self.rng)
                .unwrap(),
            Ty::Text | Ty::Date | Ty::Timestamp | Ty::Time => {
                (*["min", "max"].choose(self.rng).unwrap(), Some(ty))
            }
            // min and max of intervals are refused (0A000): PostgreSQL's answer is one
            // of several equal values.
            Ty::Interval => ("sum", Some(Ty::Interval)),
        };
        let args = match arg_ty {
            None => Vec::new(),
            Some(t) => {
                // Aggregate arguments are mostly columns: an aggregate over constants is dull.
                let arg = match self.column_of(t, &inner.local) {
                    Some(c) if self.chance(0.7) => c,
                    _ => self.expr(t, &inner),
                };
                vec![arg]
            }
        };
        let distinct = !args.is_empty() && name != "min" && name != "max" && self.chance(0.2);
        let filter = (!inner.local.is_empty() && self.chance(0.15))
            .then(|| Box::new(self.expr(Ty::Bool, &inner)));
        Expr::Agg {
            name,
            distinct,
            args,
            filter,
        }
    }

    /// A window function whose result does not depend on how ties are broken.
    fn window(&mut self, ty: Ty, ctx: &Ctx) -> Expr {
        let func = if ty == Ty::Int && self.chance(0.4) {
            Expr::Func(["rank", "dense_rank"].choose(self.rng).unwrap(), Vec::new())
        } else {
            let agg_ctx = Ctx {
                keys: Some(Vec::new()),
                ..ctx.clone()
            };
            let mut a = self.aggregate(ty, &agg_ctx);
            if let Expr::Agg {
                distinct, filter, ..
            } = &mut a
            {
                // PostgreSQL has no DISTINCT in window aggregates.
                *distinct = false;
                *filter = None;
            }
            a
        };
        let mut cols = ctx.local.clone();
        cols.shuffle(self.rng);
        let partition = cols
            .iter()
            .take(self.rng.gen_range(0..=1))
            .map(|(c, _)| Expr::Col(c.clone()))
            .collect();
        let order = cols
            .iter()
            .skip(1)
            .take(self.rng.gen_range(0..=1))
            .map(|(c, _)| OrderKey::Expr(Expr::Col(c.clone())))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|k| self.order_item(k))
            .collect();
        Expr::Window {
            func: Box::new(func),
            partition,
            order,
        }
    }

    fn expr(&mut self, ty: Ty, ctx: &Ctx) -> Expr {
        if self.depth == 0 || self.chance(0.35) {
            return self.leaf(ty, ctx);
        }
        self.depth -= 1;
        let e = self.compound(ty, ctx);
        self.depth += 1;
        e
    }

    fn subquery(&mut self, types: &[Ty], ctx: &Ctx, one_row: bool) -> Query {
        let outer = ctx.all();
        Query::select(self.select_of(types, &outer, one_row))
    }

    fn compound(&mut self, ty: Ty, ctx: &Ctx) -> Expr {
        let r = self.rng.gen_range(0..100);
        if r < 6 {
            let n = self.rng.gen_range(1..=2);
            let arms = (0..n)
                .map(|_| (self.expr(Ty::Bool, ctx), self.expr(ty, ctx)))
                .collect();
            let otherwise = self.chance(0.7).then(|| Box::new(self.expr(ty, ctx)));
            return Expr::Case(arms, otherwise);
        }
        if r < 11 {
            return Expr::Func("coalesce", vec![self.expr(ty, ctx), self.expr(ty, ctx)]);
        }
        if r < 13 {
            return Expr::Func("nullif", vec![self.expr(ty, ctx), self.expr(ty, ctx)]);
        }
        if r < 17 && self.depth > 1 {
            // A scalar subquery, usually an aggregate (one row); else it may fail with 21000.
            let one_row = self.chance(0.85);
            return Expr::Subquery(Box::new(self.subquery(&[ty], ctx, one_row)));
        }
        let x = |g: &mut Self, t: Ty| Box::new(g.expr(t, ctx));
        match ty {
            Ty::Int => match self.rng.gen_range(0..9) {
                0..=3 => {
                    let op = *["+", "-", "*", "/", "%"].choose(self.rng).unwrap();
                    Expr::Binary(x(self, Ty::Int), op, x(self, Ty::Int))
                }
                4 => Expr::Prefix("-", x(self, Ty::Int)),
                5 => Expr::Func("abs", vec![self.expr(Ty::Int, ctx)]),
                6 => Expr::Func("length", vec![self.expr(Ty::Text, ctx)]),
                7 => Expr::Cast(x(self, Ty::Numeric), "integer"),
                _ => Expr::Cast(x(self, Ty::Int), "bigint"),
            },
            Ty::Numeric => match self.rng.gen_range(0..7) {
                0..=2 => {
                    let op = *["+", "-", "*", "/"].choose(self.rng).unwrap();
                    Expr::Binary(x(self, Ty::Numeric), op, x(self, Ty::Numeric))
                }
                3 => Expr::Func(
                    "round",
                    vec![
                        self.expr(Ty::Numeric, ctx),
                        Expr::Lit(self.rng.gen_range(0..3).to_string()),
                    ],
                ),
                4 => Expr::Func("abs", vec![self.expr(Ty::Numeric, ctx)]),
                5 => Expr::Cast(x(self, Ty::Int), "numeric"),
                _ => Expr::Binary(x(self, Ty::Int), "*", x(self, Ty::Numeric)),
            },
            Ty::Float => match self.rng.gen_range(0..5) {
                0..=2 => {
                    let op = *["+", "-", "*", "/"].choose(self.rng).unwrap();
                    Expr::Binary(x(self, Ty::Float), op, x(self, Ty::Float))
                }
                3 => Expr::Func(
                    ["abs", "floor", "ceil"].choose(self.rng).unwrap(),
                    vec![self.expr(Ty::Float, ctx)],
                ),
                _ => Expr::Cast(x(self, Ty::Int), "double precision"),
            },
            Ty::Text => match self.rng.gen_range(0..8) {
                0 => Expr::Func(
                    ["upper", "lower", "trim"].choose(self.rng).unwrap(),
                    vec![self.expr(Ty::Text, ctx)],
                ),
                1 | 2 => Expr::Binary(x(self, Ty::Text), "||", x(self, Ty::Text)),
                3 => Expr::Func(
                    "substr",
                    vec![
                        self.expr(Ty::Text, ctx),
                        Expr::Lit(self.rng.gen_range(0..4).to_string()),
                        Expr::Lit(self.rng.gen_range(0..4).to_string()),
                    ],
                ),
                4 => Expr::Func(
                    "replace",
                    vec![
                        self.expr(Ty::Text, ctx),
                        Expr::Lit("'a'".into()),
                        Expr::Lit("'XY'".into()),
                    ],
                ),
                5 => {
                    let t = *[Ty::Int, Ty::Numeric, Ty::Bool, Ty::Date]
                        .choose(self.rng)
                        .unwrap();
                    Expr::Cast(x(self, t), "text")
                }
                6 => Expr::Func(
                    "concat",
                    vec![self.expr(Ty::Text, ctx), self.expr(Ty::Text, ctx)],
                ),
                _ => Expr::Func(
                    ["left", "right"].choose(self.rng).unwrap(),
                    vec![
                        self.expr(Ty::Text, ctx),
                        Expr::Lit(self.rng.gen_range(-1..3).to_string()),
                    ],
                ),
            },
            Ty::Bool => self.predicate(ctx),
            Ty::Date => match self.rng.gen_range(0..2) {
                // PostgreSQL adds an integer (not a bigint) of days to a date.
                0 => Expr::Binary(
                    x(self, Ty::Date),
                    "+",
                    Box::new(Expr::Lit(self.rng.gen_range(-3..40).to_string())),
                ),
                _ => Expr::Cast(x(self, Ty::Timestamp), "date"),
            },
            Ty::Time => match self.rng.gen_range(0..3) {
                0 => Expr::Binary(x(self, Ty::Time), "+", x(self, Ty::Interval)),
                1 => Expr::Binary(x(self, Ty::Time), "-", x(self, Ty::Interval)),
                _ => Expr::Cast(x(self, Ty::Timestamp), "time"),
            },
            Ty::Interval => match self.rng.gen_range(0..5) {
                0 => Expr::Binary(x(self, Ty::Interval), "+", x(self, Ty::Interval)),
                1 => Expr::Binary(x(self, Ty::Interval), "-", x(self, Ty::Interval)),
                2 => Expr::Binary(
                    x(self, Ty::Interval),
                    "*",
                    Box::new(Expr::Lit(self.rng.gen_range(-2..4).to_string())),
                ),
                3 => Expr::Binary(x(self, Ty::Time), "-", x(self, Ty::Time)),
                _ => Expr::Prefix("-", x(self, Ty::Interval)),
            },
            Ty::Timestamp => match self.rng.gen_range(0..3) {
                2 => Expr::Binary(x(self, Ty::Timestamp), "+", x(self, Ty::Interval)),
                0 => Expr::Cast(x(self, Ty::Date), "timestamp"),
                _ => Expr::Func(
                    "date_trunc",
                    vec![
                        Expr::Lit(
                            ["'month'", "'day'", "'hour'", "'year'"]
                                .choose(self.rng)
                                .unwrap()
                                .to_string(),
                        ),
                        self.expr(Ty::Timestamp, ctx),
                    ],
                ),
            },
        }
    }

    fn predicate(&mut self, ctx: &Ctx) -> Expr {
        let t = self.pick_ty();
        let x = |g: &mut Self, t: Ty| Box::new(g.expr(t, ctx));
        match self.rng.gen_range(0..100) {
            0..=29 => {
                let op = *["=", "<>", "<", "<=", ">", ">="].choose(self.rng).unwrap();
                // Mixed numeric families compare after PostgreSQL's implicit casts.
                let rt = if t.is_numeric() && self.chance(0.2) {
                    *[Ty::Int, Ty::Numeric, Ty::Float].choose(self.rng).unwrap()
                } else {
                    t
                };
                Expr::Binary(x(self, t), op, x(self, rt))
            }
            30..=41 => {
                let op = *["AND", "OR"].choose(self.rng).unwrap();
                Expr::Binary(x(self, Ty::Bool), op, x(self, Ty::Bool))
            }
            42..=46 => Expr::Prefix("NOT", x(self, Ty::Bool)),
            47..=52 => {
                let op = *["IS NULL", "IS NOT NULL"].choose(self.rng).unwrap();
                Expr::Postfix(x(self, t), op)
            }
            53..=55 => {
                let op = *["IS TRUE", "IS NOT TRUE", "IS FALSE", "IS UNKNOWN"]
                    .choose(self.rng)
                    .unwrap();
                Expr::Postfix(x(self, Ty::Bool), op)
            }
            56..=58 => {
                let op = *["IS DISTINCT FROM", "IS NOT DISTINCT FROM"]
                    .choose(self.rng)
                    .unwrap();
                Expr::Binary(x(self, t), op, x(self, t))
            }
            59..=63 => Expr::Between {
                e: x(self, t),
                not: self.chance(0.3),
                lo: x(self, t),
                hi: x(self, t),
            },
            64..=68 => {
                let n = self.rng.gen_range(1..=4);
                Expr::InList {
                    e: x(self, t),
                    not: self.chance(0.4),
                    list: (0..n).map(|_| self.expr(t, ctx)).collect(),
                }
            }
            69..=73 => {
                let pattern = [
                    "'a%'", "'%b%'", "'_'", "'%'", "'A%'", "'a\\%b'", "'%c'", "''",
                ]
                .choose(self.rng)
                .unwrap()
                .to_string();
                Expr::Like {
                    e: x(self, Ty::Text),
                    not: self.chance(0.3),
                    pattern: Box::new(Expr::Lit(pattern)),
                }
            }
            74..=78 if self.depth > 1 => Expr::Exists {
                not: self.chance(0.4),
                query: Box::new(self.subquery(&[t], ctx, false)),
            },
            79..=85 if self.depth > 1 => Expr::InSubquery {
                e: x(self, t),
                not: self.chance(0.5),
                query: Box::new(self.subquery(&[t], ctx, false)),
            },
            86..=89 if self.depth > 1 => Expr::Quantified {
                e: x(self, t),
                op: ["=", "<>", "<", ">="].choose(self.rng).unwrap(),
                all: self.chance(0.5),
                query: Box::new(self.subquery(&[t], ctx, false)),
            },
            _ => match self.column_of(Ty::Bool, &ctx.local) {
                Some(c) if ctx.keys.is_none() => c,
                _ => self.leaf(Ty::Bool, ctx),
            },
        }
    }

    /// A predicate over a query's FROM columns, for ternary logic partitioning.
    pub fn partition_predicate(&mut self, scope: &[(String, Ty)]) -> Expr {
        self.depth = 2;
        let ctx = Ctx {
            local: scope.to_vec(),
            outer: Vec::new(),
            keys: None,
        };
        self.predicate(&ctx)
    }
}

/// The columns a select's FROM makes visible (for predicates added to it afterwards).
pub fn from_scope(schema: &Schema, from: &[From]) -> Option<Scope> {
    let mut out = Vec::new();
    for f in from {
        match f {
            From::Table { name, alias } => {
                let t = schema.tables.iter().find(|t| &t.name == name)?;
                out.extend(
                    t.columns
                        .iter()
                        .map(|c| (format!("{alias}.{}", c.name), c.ty)),
                );
            }
            From::Join { left, right, .. } => {
                out.extend(from_scope(schema, std::slice::from_ref(left))?);
                out.extend(from_scope(schema, std::slice::from_ref(right))?);
            }
            From::Derived { .. } => return None,
        }
    }
    Some(out)
}
