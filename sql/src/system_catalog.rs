//! The catalog tables that describe the database's own tables: `pg_namespace`, `pg_class`,
//! `pg_attribute`, `pg_index`, `pg_constraint`, `pg_attrdef`, `pg_sequence` and `pg_depend`
//! built from the table definitions, and the functions that print their definitions back
//! (`pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_expr`).
//!
//! datafusion-pg-catalog provides the rest of `pg_catalog` (types, functions, operators as
//! PostgreSQL 15 ships them) and the schema of every table; this module wraps its schema
//! provider and replaces the tables whose rows are DuetDB's objects. Their OIDs are derived
//! from the ids the store gives tables and indexes, so they are the same in every session
//! and after a restart, and a client may cache them as it would with PostgreSQL:
//!
//! | object | OID |
//! |---|---|
//! | table, sequence, secondary index | 16384 + id |
//! | primary-key index | [`PK_INDEX_BASE`] + table id |
//! | constraint (k-th of its table) | [`CONSTRAINT_BASE`] + table id × 64 + k |
//! | column default | [`ATTRDEF_BASE`] + table id × 1024 + column number |

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use duet_common::batch::{PG_DECLARED_TYPE, PG_TYPMOD};
use duet_common::catalog::{RefAction, TableDef};
use duet_common::types::SqlType;
use duet_rowstore::StoreRef;
use sqlparser::ast::{Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments};

/// OIDs of the namespaces.
pub const PG_CATALOG_NAMESPACE: u32 = 11;
pub const PUBLIC_NAMESPACE: u32 = 2200;
pub const INFORMATION_SCHEMA_NAMESPACE: u32 = 12400;
pub const DUET_NAMESPACE: u32 = 12401;
/// The first OID PostgreSQL gives user objects.
pub const FIRST_USER_OID: u32 = 16384;
pub const PK_INDEX_BASE: u32 = 0x2000_0000;
pub const CONSTRAINT_BASE: u32 = 0x3000_0000;
pub const ATTRDEF_BASE: u32 = 0x4000_0000;
/// `pg_class`'s own OID: `classid` in `pg_depend` and `obj_description(oid, 'pg_class')`.
const PG_CLASS_OID: u32 = 1259;
/// `pg_namespace`'s OID (`refclassid` of a dependency on a schema).
const PG_NAMESPACE_OID: u32 = 2615;
/// The OIDs of the bootstrap superuser, the btree access method and the default collation.
const SUPERUSER: u32 = 10;
const BTREE: u32 = 403;
const HEAP: u32 = 2;
const DEFAULT_COLLATION: u32 = 100;

/// The relation OID of a table, sequence or secondary index with store id `id`.
pub fn relation_oid(id: u32) -> u32 {
    oid31(FIRST_USER_OID.wrapping_add(id))
}

/// OIDs are unsigned, but catalog columns hold them as `int4`: keep them below 2^31.
fn oid31(oid: u32) -> u32 {
    oid & 0x7fff_ffff
}

/// The OID of the index behind table `table_id`'s primary key.
pub fn pk_index_oid(table_id: u32) -> u32 {
    oid31(PK_INDEX_BASE.wrapping_add(table_id))
}

/// The pg_catalog relations at the OIDs PostgreSQL gives them (clients join on these,
/// e.g. `classoid = 'pg_class'::regclass`); the others get OIDs by their position.
fn pg_catalog_oid(name: &str, position: usize) -> u32 {
    match name {
        "pg_type" => 1247,
        "pg_attribute" => 1249,
        "pg_proc" => 1255,
        "pg_class" => PG_CLASS_OID,
        "pg_authid" => 1260,
        "pg_database" => 1262,
        "pg_am" => 2601,
        "pg_attrdef" => 2604,
        "pg_constraint" => 2606,
        "pg_depend" => 2608,
        "pg_description" => 2609,
        "pg_index" => 2610,
        "pg_namespace" => 2615,
        "pg_sequence" => 2224,
        "pg_trigger" => 2620,
        "pg_rewrite" => 2618,
        "pg_operator" => 2617,
        "pg_collation" => 3456,
        "pg_extension" => 3079,
        _ => 12000 + position as u32,
    }
}

/// One constraint of a table, as `pg_constraint` lists it.
#[derive(Debug, Clone)]
pub struct ConstraintRow {
    pub oid: u32,
    pub name: String,
    /// `p`, `u`, `c` or `f`.
    pub kind: char,
    /// Column numbers (1-based) of the constrained columns.
    pub columns: Vec<i16>,
    /// The index that enforces it (`p`, `u`) or that the referenced key uses (`f`).
    pub index: u32,
    pub ref_table: u32,
    pub ref_columns: Vec<i16>,
    pub on_update: char,
    pub on_delete: char,
    pub deferrable: bool,
    pub deferred: bool,
    /// `pg_get_constraintdef`'s text.
    pub definition: String,
}

fn action_code(a: RefAction) -> char {
    match a {
        RefAction::NoAction => 'a',
        RefAction::Restrict => 'r',
        RefAction::Cascade => 'c',
        RefAction::SetNull => 'n',
        RefAction::SetDefault => 'd',
    }
}

fn attnums(cols: &[usize]) -> Vec<i16> {
    cols.iter().map(|&c| c as i16 + 1).collect()
}

/// Quotes an identifier as `quote_ident` does: only where it is needed.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !matches!(
            name,
            "user"
                | "table"
                | "order"
                | "group"
                | "select"
                | "from"
                | "where"
                | "check"
                | "default"
                | "primary"
                | "references"
                | "unique"
                | "column"
                | "constraint"
                | "index"
                | "end"
                | "limit"
                | "offset"
                | "all"
                | "and"
                | "or"
                | "not"
                | "null"
                | "true"
                | "false"
        );
    if plain {
        name.to_string()
    } else {
        crate::ident::quote(name)
    }
}

fn column_list(def: &TableDef, cols: &[usize]) -> String {
    cols.iter()
        .map(|&c| quote_ident(&def.columns[c].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The constraints of `def` in a stable order (primary key, unique, check, foreign key),
/// each with its OID. `tables` resolves the tables foreign keys reference.
pub fn constraints(def: &TableDef, tables: &[Arc<TableDef>]) -> Vec<ConstraintRow> {
    let mut out = Vec::new();
    let mut next = 0u32;
    let mut oid = || {
        let o = oid31(
            CONSTRAINT_BASE
                .wrapping_add(def.id.wrapping_mul(64))
                .wrapping_add(next),
        );
        next += 1;
        o
    };
    let row = |oid, name: &str, kind, columns: &[usize], index, definition| ConstraintRow {
        oid,
        name: name.to_string(),
        kind,
        columns: attnums(columns),
        index,
        ref_table: 0,
        ref_columns: vec![],
        on_update: ' ',
        on_delete: ' ',
        deferrable: false,
        deferred: false,
        definition,
    };
    if !def.primary_key.is_empty() {
        out.push(row(
            oid(),
            &def.pk_name,
            'p',
            &def.primary_key,
            pk_index_oid(def.id),
            format!("PRIMARY KEY ({})", column_list(def, &def.primary_key)),
        ));
    }
    for idx in def.indexes.iter().filter(|i| i.constraint) {
        out.push(row(
            oid(),
            &idx.name,
            'u',
            &idx.columns,
            relation_oid(idx.id),
            format!("UNIQUE ({})", column_list(def, &idx.columns)),
        ));
    }
    for check in &def.checks {
        out.push(row(
            oid(),
            &check.name,
            'c',
            &check_columns(def, &check.expr),
            0,
            format!("CHECK (({}))", check.expr),
        ));
    }
    for fk in &def.foreign_keys {
        let parent = tables.iter().find(|t| t.name == fk.ref_table);
        let (ref_table, index, ref_list) = match parent {
            Some(p) => {
                let index = if p.primary_key == fk.ref_columns {
                    pk_index_oid(p.id)
                } else {
                    p.indexes
                        .iter()
                        .find(|i| i.unique && i.columns == fk.ref_columns)
                        .map(|i| relation_oid(i.id))
                        .unwrap_or(0)
                };
                (relation_oid(p.id), index, column_list(p, &fk.ref_columns))
            }
            None => (0, 0, String::new()),
        };
        let mut text = format!(
            "FOREIGN KEY ({}) REFERENCES {}({})",
            column_list(def, &fk.columns),
            quote_ident(&fk.ref_table),
            ref_list
        );
        if fk.on_update != RefAction::NoAction {
            text.push_str(&format!(" ON UPDATE {}", fk.on_update.sql()));
        }
        if fk.on_delete != RefAction::NoAction {
            text.push_str(&format!(" ON DELETE {}", fk.on_delete.sql()));
        }
        if fk.deferrable {
            text.push_str(" DEFERRABLE");
            if fk.initially_deferred {
                text.push_str(" INITIALLY DEFERRED");
            }
        }
        let mut r = row(oid(), &fk.name, 'f', &fk.columns, index, text);
        r.ref_table = ref_table;
        r.ref_columns = attnums(&fk.ref_columns);
        r.on_update = action_code(fk.on_update);
        r.on_delete = action_code(fk.on_delete);
        r.deferrable = fk.deferrable;
        r.deferred = fk.initially_deferred;
        out.push(r);
    }
    out
}

/// An index of a table as `pg_index` and `pg_get_indexdef` see it.
struct IndexRow<'a> {
    oid: u32,
    name: &'a str,
    columns: &'a [usize],
    unique: bool,
    primary: bool,
}

fn indexes(def: &TableDef) -> Vec<IndexRow<'_>> {
    let mut out = Vec::new();
    if !def.primary_key.is_empty() {
        out.push(IndexRow {
            oid: pk_index_oid(def.id),
            name: &def.pk_name,
            columns: &def.primary_key,
            unique: true,
            primary: true,
        });
    }
    for idx in &def.indexes {
        out.push(IndexRow {
            oid: relation_oid(idx.id),
            name: &idx.name,
            columns: &idx.columns,
            unique: idx.unique,
            primary: false,
        });
    }
    out
}

fn index_definition(def: &TableDef, idx: &IndexRow<'_>) -> String {
    format!(
        "CREATE {}INDEX {} ON public.{} USING btree ({})",
        if idx.unique { "UNIQUE " } else { "" },
        quote_ident(idx.name),
        quote_ident(&def.name),
        column_list(def, idx.columns)
    )
}

/// A column's default as `pg_get_expr(adbin, adrelid)` prints it: a sequence's name is
/// a `regclass` literal, as PostgreSQL stores it.
fn default_text(expr: &str, ty: &SqlType) -> String {
    if let Some(seq) = expr
        .strip_prefix("nextval('")
        .and_then(|r| r.strip_suffix("')"))
        .filter(|s| !s.contains('\''))
    {
        return format!("nextval('{seq}'::regclass)");
    }
    // A string literal is stored typed: `'x'::text`, `'x'::character varying`.
    let quoted = expr.len() >= 2
        && expr.starts_with('\'')
        && expr.ends_with('\'')
        && !expr[1..expr.len() - 1].replace("''", "").contains('\'');
    if quoted {
        let name = match ty {
            SqlType::Varchar(_) => "character varying".to_string(),
            SqlType::Char(_) => "bpchar".to_string(),
            SqlType::Numeric { .. } => "numeric".to_string(),
            other => other.pg_name(),
        };
        return format!("{expr}::{name}");
    }
    expr.to_string()
}

/// The columns of `def` a CHECK expression reads (`pg_constraint.conkey` of the check).
fn check_columns(def: &TableDef, expr: &str) -> Vec<usize> {
    use sqlparser::ast::Visit;
    let Ok(parsed) = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
    else {
        return vec![];
    };
    let mut found = vec![];
    let _ = parsed.visit(&mut ColumnNames(|name: &str| {
        if let Some(c) = def.column_index(name) {
            if !found.contains(&c) {
                found.push(c);
            }
        }
    }));
    found.sort_unstable();
    found
}

/// Calls its function with the name of each column an expression reads.
struct ColumnNames<F>(F);

impl<F: FnMut(&str)> sqlparser::ast::Visitor for ColumnNames<F> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> std::ops::ControlFlow<()> {
        match e {
            Expr::Identifier(i) => (self.0)(&crate::ident::ident_name(i)),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last() {
                    (self.0)(&crate::ident::ident_name(last))
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Which identity kind (`a`lways, by `d`efault) column `column` of `table` has, from the
/// sequence that backs it.
fn identity_of(tables: &[Arc<TableDef>], table: &str, column: &str) -> Option<char> {
    tables.iter().find_map(|t| {
        let seq = t.sequence.as_ref()?;
        let (ot, oc) = seq.owned_by.as_ref()?;
        let kind = seq.identity.as_ref()?;
        (ot == table && oc == column).then(|| if kind == "always" { 'a' } else { 'd' })
    })
}

/// A value for a catalog row, converted to the column's type.
#[derive(Debug, Clone)]
enum V {
    I(i64),
    S(String),
    B(bool),
    F(f64),
    /// `int2vector` / `int2[]` / `oidvector`.
    Ints(Vec<i64>),
    Null,
}

impl From<u32> for V {
    fn from(v: u32) -> Self {
        V::I(v as i64)
    }
}
impl From<i64> for V {
    fn from(v: i64) -> Self {
        V::I(v)
    }
}
impl From<i32> for V {
    fn from(v: i32) -> Self {
        V::I(v as i64)
    }
}
impl From<usize> for V {
    fn from(v: usize) -> Self {
        V::I(v as i64)
    }
}
impl From<bool> for V {
    fn from(v: bool) -> Self {
        V::B(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> Self {
        V::S(v.to_string())
    }
}
impl From<String> for V {
    fn from(v: String) -> Self {
        V::S(v)
    }
}
impl From<char> for V {
    fn from(v: char) -> Self {
        V::S(v.to_string())
    }
}

/// Rows of one catalog table, each given by column name; a column a row does not name is
/// NULL, or the type's zero value where the column is declared NOT NULL.
struct Rows {
    table: &'static str,
    schema: SchemaRef,
    columns: Vec<Vec<ScalarValue>>,
}

impl Rows {
    fn new(table: &'static str, schema: SchemaRef) -> Self {
        // The vector columns are arrays here (datafusion-pg-catalog has them as text), so
        // that `unnest(indkey)` and `conkey[1]` work as in PostgreSQL.
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
            schema
                .fields()
                .iter()
                .map(|f| {
                    let (item, vector) = match f.name().as_str() {
                        "indkey" | "indoption" => (DataType::Int16, Some("int2vector")),
                        "indcollation" | "indclass" => (DataType::Int32, Some("oidvector")),
                        "conkey" | "confkey" => (DataType::Int16, None),
                        _ => return f.clone(),
                    };
                    let mut field = f
                        .as_ref()
                        .clone()
                        .with_data_type(DataType::new_list(item, true));
                    if let Some(v) = vector {
                        // Sent in PostgreSQL's text form, `1 2` (see duet-wire's encoder).
                        let mut m = field.metadata().clone();
                        m.insert(PG_DECLARED_TYPE.to_string(), v.to_string());
                        m.insert(PG_TYPMOD.to_string(), "-1".to_string());
                        field = field.with_metadata(m);
                    }
                    Arc::new(field)
                })
                .collect::<Vec<_>>(),
            schema.metadata().clone(),
        ));
        // Columns clients read that datafusion-pg-catalog's pg_class lacks.
        let schema = if table == "pg_class" {
            let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
            for (name, ty) in [
                ("reloptions", DataType::new_list(DataType::Utf8, true)),
                ("relacl", DataType::new_list(DataType::Utf8, true)),
            ] {
                if schema.index_of(name).is_err() {
                    fields.push(Arc::new(Field::new(name, ty, true)));
                }
            }
            Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
                fields,
                schema.metadata().clone(),
            ))
        } else {
            schema
        };
        let columns = vec![Vec::new(); schema.fields().len()];
        Self {
            table,
            schema,
            columns,
        }
    }

    fn push(&mut self, row: Vec<(&str, V)>) -> Result<()> {
        let mut values: Vec<Option<V>> = vec![None; self.columns.len()];
        for (name, v) in row {
            let i = self.schema.index_of(name).map_err(|_| {
                DataFusionError::Internal(format!("{} has no column {name}", self.table))
            })?;
            values[i] = Some(v);
        }
        for (i, v) in values.into_iter().enumerate() {
            let field = self.schema.field(i);
            let ty = field.data_type();
            let scalar = match v {
                None | Some(V::Null) if field.is_nullable() => ScalarValue::try_from(ty)?,
                None | Some(V::Null) => ScalarValue::new_default(ty)?,
                Some(V::I(n)) => ScalarValue::Int64(Some(n)).cast_to(ty)?,
                Some(V::S(s)) => ScalarValue::Utf8(Some(s)).cast_to(ty)?,
                Some(V::B(b)) => ScalarValue::Boolean(Some(b)).cast_to(ty)?,
                Some(V::F(f)) => ScalarValue::Float64(Some(f)).cast_to(ty)?,
                Some(V::Ints(ns)) => match ty {
                    DataType::List(item) | DataType::LargeList(item) => {
                        let items = ns
                            .iter()
                            .map(|&n| ScalarValue::Int64(Some(n)).cast_to(item.data_type()))
                            .collect::<Result<Vec<_>>>()?;
                        ScalarValue::List(ScalarValue::new_list_nullable(&items, item.data_type()))
                            .cast_to(ty)?
                    }
                    // The text form of int2vector and oidvector.
                    _ => ScalarValue::Utf8(Some(
                        ns.iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ))
                    .cast_to(ty)?,
                },
            };
            self.columns[i].push(scalar);
        }
        Ok(())
    }

    fn finish(self) -> Result<Arc<dyn TableProvider>> {
        let arrays = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, field)| {
                if values.is_empty() {
                    Ok(datafusion::arrow::array::new_empty_array(field.data_type()))
                } else {
                    ScalarValue::iter_to_array(values)
                }
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        Ok(Arc::new(MemTable::try_new(self.schema, vec![vec![batch]])?))
    }
}

/// A database's OID: `postgres` has PostgreSQL's (5), any other one a number from its
/// name (the same on every start).
pub fn database_oid(name: &str) -> u32 {
    if name == crate::databases::POSTGRES_DATABASE {
        return 5;
    }
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    16384 + hash % 1_000_000
}

/// `pg_catalog`: datafusion-pg-catalog's tables, with those describing DuetDB's own
/// objects built from the store's table definitions at each use.
pub struct PgCatalog {
    inner: Arc<dyn SchemaProvider>,
    store: StoreRef,
    shared: crate::session::SharedRef,
}

/// The tables this module builds.
const OWN_TABLES: &[&str] = &[
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_index",
    "pg_constraint",
    "pg_attrdef",
    "pg_sequence",
    "pg_depend",
    "pg_settings",
    "pg_authid",
    "pg_roles",
    "pg_views",
    "pg_database",
];

/// Settings `pg_settings` reports (clients read `max_index_keys` and the like from it).
const SETTINGS: &[(&str, &str)] = &[
    ("max_index_keys", "32"),
    ("max_identifier_length", "63"),
    ("block_size", "8192"),
    ("integer_datetimes", "on"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("server_version", duet_wire::SERVER_VERSION),
    ("server_version_num", "150000"),
    ("default_transaction_isolation", "read committed"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
];

impl PgCatalog {
    pub fn new(inner: Arc<dyn SchemaProvider>, shared: crate::session::SharedRef) -> Self {
        Self {
            inner,
            store: shared.store.clone(),
            shared,
        }
    }

    async fn schema_of(&self, name: &str) -> Result<SchemaRef> {
        self.inner
            .table(name)
            .await?
            .map(|t| t.schema())
            .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog has no {name}")))
    }

    fn tables(&self) -> Vec<Arc<TableDef>> {
        let mut t = self.store.tables();
        t.sort_by_key(|d| d.id);
        t
    }

    async fn build(&self, name: &'static str) -> Result<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(name, self.schema_of(name).await?);
        let tables = self.tables();
        match name {
            "pg_namespace" => {
                for (oid, nsp) in [
                    (PG_CATALOG_NAMESPACE, "pg_catalog"),
                    (PUBLIC_NAMESPACE, "public"),
                    (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
                    (DUET_NAMESPACE, "duet"),
                ] {
                    rows.push(vec![
                        ("oid", oid.into()),
                        ("nspname", nsp.into()),
                        ("nspowner", SUPERUSER.into()),
                    ])?;
                }
            }
            "pg_class" => self.pg_class(&mut rows, &tables)?,
            "pg_attribute" => pg_attribute(&mut rows, &tables)?,
            "pg_index" => {
                for def in &tables {
                    for idx in indexes(def) {
                        let n = idx.columns.len();
                        let key: Vec<i64> = idx.columns.iter().map(|&c| c as i64 + 1).collect();
                        let collations: Vec<i64> = idx
                            .columns
                            .iter()
                            .map(|&c| {
                                if def.columns[c].ty.is_text() {
                                    DEFAULT_COLLATION as i64
                                } else {
                                    0
                                }
                            })
                            .collect();
                        rows.push(vec![
                            ("indexrelid", idx.oid.into()),
                            ("indrelid", relation_oid(def.id).into()),
                            ("indnatts", n.into()),
                            ("indnkeyatts", n.into()),
                            ("indisunique", idx.unique.into()),
                            ("indisprimary", idx.primary.into()),
                            ("indisexclusion", false.into()),
                            ("indimmediate", true.into()),
                            ("indisclustered", false.into()),
                            ("indisvalid", true.into()),
                            ("indcheckxmin", false.into()),
                            ("indisready", true.into()),
                            ("indislive", true.into()),
                            ("indisreplident", false.into()),
                            ("indkey", V::Ints(key)),
                            ("indcollation", V::Ints(collations)),
                            ("indclass", V::Ints(vec![0; n])),
                            ("indoption", V::Ints(vec![0; n])),
                        ])?;
                    }
                }
            }
            "pg_constraint" => {
                for def in &tables {
                    for c in constraints(def, &tables) {
                        rows.push(vec![
                            ("oid", c.oid.into()),
                            ("conname", c.name.into()),
                            ("connamespace", PUBLIC_NAMESPACE.into()),
                            ("contype", c.kind.into()),
                            ("condeferrable", c.deferrable.into()),
                            ("condeferred", c.deferred.into()),
                            ("convalidated", true.into()),
                            ("conrelid", relation_oid(def.id).into()),
                            ("contypid", 0u32.into()),
                            ("conindid", c.index.into()),
                            ("conparentid", 0u32.into()),
                            ("confrelid", c.ref_table.into()),
                            ("confupdtype", c.on_update.into()),
                            ("confdeltype", c.on_delete.into()),
                            (
                                "confmatchtype",
                                if c.kind == 'f' { 's' } else { ' ' }.into(),
                            ),
                            ("conislocal", true.into()),
                            ("coninhcount", 0i64.into()),
                            ("connoinherit", (c.kind == 'c').into()),
                            (
                                "conkey",
                                if c.columns.is_empty() {
                                    V::Null
                                } else {
                                    V::Ints(c.columns.iter().map(|&n| n as i64).collect())
                                },
                            ),
                            (
                                "confkey",
                                if c.ref_columns.is_empty() {
                                    V::Null
                                } else {
                                    V::Ints(c.ref_columns.iter().map(|&n| n as i64).collect())
                                },
                            ),
                            (
                                "conbin",
                                if c.kind == 'c' {
                                    V::S(c.definition.clone())
                                } else {
                                    V::Null
                                },
                            ),
                        ])?;
                    }
                }
            }
            "pg_attrdef" => {
                for def in &tables {
                    for (i, col) in def.columns.iter().enumerate() {
                        let Some(expr) = &col.default_expr else {
                            continue;
                        };
                        if identity_of(&tables, &def.name, &col.name).is_some() {
                            continue;
                        }
                        rows.push(vec![
                            (
                                "oid",
                                oid31(
                                    ATTRDEF_BASE
                                        .wrapping_add(def.id.wrapping_mul(1024))
                                        .wrapping_add(i as u32 + 1),
                                )
                                .into(),
                            ),
                            ("adrelid", relation_oid(def.id).into()),
                            ("adnum", (i + 1).into()),
                            ("adbin", default_text(expr, &col.ty).into()),
                        ])?;
                    }
                }
            }
            "pg_sequence" => {
                for def in &tables {
                    let Some(seq) = &def.sequence else { continue };
                    rows.push(vec![
                        ("seqrelid", relation_oid(def.id).into()),
                        ("seqtypid", seq.ty.pg_type_oid().into()),
                        ("seqstart", seq.start.into()),
                        ("seqincrement", seq.increment.into()),
                        ("seqmax", seq.max.into()),
                        ("seqmin", seq.min.into()),
                        ("seqcache", seq.cache.into()),
                        ("seqcycle", seq.cycle.into()),
                    ])?;
                }
            }
            "pg_depend" => {
                // Tables and sequences depend on their schema.
                for def in &tables {
                    rows.push(vec![
                        ("classid", PG_CLASS_OID.into()),
                        ("objid", relation_oid(def.id).into()),
                        ("objsubid", 0i64.into()),
                        ("refclassid", PG_NAMESPACE_OID.into()),
                        ("refobjid", PUBLIC_NAMESPACE.into()),
                        ("refobjsubid", 0i64.into()),
                        ("deptype", 'n'.into()),
                    ])?;
                }
                // A sequence owned by a column depends on it: automatically (`serial`,
                // OWNED BY) or internally (identity).
                for def in &tables {
                    let Some(seq) = &def.sequence else { continue };
                    let Some((table, column)) = &seq.owned_by else {
                        continue;
                    };
                    let Some(owner) = tables.iter().find(|t| &t.name == table) else {
                        continue;
                    };
                    let Some(col) = owner.column_index(column) else {
                        continue;
                    };
                    rows.push(vec![
                        ("classid", PG_CLASS_OID.into()),
                        ("objid", relation_oid(def.id).into()),
                        ("objsubid", 0i64.into()),
                        ("refclassid", PG_CLASS_OID.into()),
                        ("refobjid", relation_oid(owner.id).into()),
                        ("refobjsubid", (col + 1).into()),
                        (
                            "deptype",
                            if seq.identity.is_some() { 'i' } else { 'a' }.into(),
                        ),
                    ])?;
                }
            }
            "pg_settings" => {
                for (setting, value) in SETTINGS {
                    rows.push(vec![
                        ("name", (*setting).into()),
                        ("setting", (*value).into()),
                        ("source", "default".into()),
                    ])?;
                }
            }
            "pg_database" => {
                let mut names = match self.shared.databases() {
                    Some(d) => d.names(),
                    None => vec![self.shared.name()],
                };
                names.sort();
                for db in names {
                    rows.push(vec![
                        ("oid", database_oid(&db).into()),
                        ("datname", db.as_str().into()),
                        ("datdba", SUPERUSER.into()),
                        ("encoding", 6i64.into()),
                        ("datlocprovider", 'c'.into()),
                        ("datcollate", "C".into()),
                        ("datctype", "C".into()),
                        ("datistemplate", false.into()),
                        ("datallowconn", true.into()),
                        ("datconnlimit", (-1i64).into()),
                        ("dattablespace", 1663u32.into()),
                    ])?;
                }
            }
            "pg_views" => {
                for def in tables.iter().filter(|t| t.view.is_some()) {
                    let query = &def.view.as_ref().expect("filtered").query;
                    rows.push(vec![
                        ("schemaname", "public".into()),
                        ("viewname", def.name.as_str().into()),
                        (
                            "viewowner",
                            duet_common::catalog::BOOTSTRAP_SUPERUSER.into(),
                        ),
                        ("definition", format!(" {};", query.trim()).into()),
                    ])?;
                }
            }
            "pg_authid" | "pg_roles" => {
                for role in self.shared.roles_store().roles() {
                    let valid_until = role
                        .valid_until
                        .as_deref()
                        .and_then(crate::roles::valid_until_rfc3339);
                    let password = if name == "pg_roles" {
                        Some("********".to_string())
                    } else {
                        role.password.clone()
                    };
                    rows.push(vec![
                        ("oid", role.oid().into()),
                        ("rolname", role.name.as_str().into()),
                        ("rolsuper", role.superuser.into()),
                        ("rolinherit", role.inherit.into()),
                        ("rolcreaterole", role.createrole.into()),
                        ("rolcreatedb", role.createdb.into()),
                        ("rolcanlogin", role.login.into()),
                        ("rolreplication", role.replication.into()),
                        ("rolbypassrls", role.bypassrls.into()),
                        ("rolconnlimit", role.connection_limit.into()),
                        ("rolpassword", password.map_or(V::Null, V::S)),
                        ("rolvaliduntil", valid_until.map_or(V::Null, V::S)),
                    ])?;
                }
            }
            _ => unreachable!("{name} is not one of OWN_TABLES"),
        }
        rows.finish()
    }

    fn pg_class(&self, rows: &mut Rows, tables: &[Arc<TableDef>]) -> Result<()> {
        for def in tables {
            let kind = if def.sequence.is_some() {
                'S'
            } else if def.view.is_some() {
                'v'
            } else {
                'r'
            };
            let oid = relation_oid(def.id);
            let idx = indexes(def);
            rows.push(vec![
                ("oid", oid.into()),
                ("relname", def.name.as_str().into()),
                ("relnamespace", PUBLIC_NAMESPACE.into()),
                ("reltype", 0u32.into()),
                ("relowner", SUPERUSER.into()),
                ("relam", if kind == 'r' { HEAP } else { 0 }.into()),
                ("relfilenode", oid.into()),
                ("reltablespace", 0u32.into()),
                ("relpages", 0i64.into()),
                ("reltuples", V::F(-1.0)),
                ("relhasindex", (!idx.is_empty()).into()),
                ("relisshared", false.into()),
                ("relpersistence", 'p'.into()),
                ("relkind", kind.into()),
                ("relnatts", def.columns.len().into()),
                ("relchecks", def.checks.len().into()),
                ("relhasrules", false.into()),
                // Foreign keys are triggers in PostgreSQL, on both tables: psql's `\d`
                // lists them (and "Referenced by") only where this is set.
                (
                    "relhastriggers",
                    (!def.foreign_keys.is_empty()
                        || tables
                            .iter()
                            .any(|t| t.foreign_keys.iter().any(|fk| fk.ref_table == def.name)))
                    .into(),
                ),
                ("relhassubclass", false.into()),
                ("relrowsecurity", false.into()),
                ("relforcerowsecurity", false.into()),
                ("relispopulated", true.into()),
                ("relreplident", if kind == 'r' { 'd' } else { 'n' }.into()),
                ("relispartition", false.into()),
            ])?;
            for i in idx {
                rows.push(vec![
                    ("oid", i.oid.into()),
                    ("relname", i.name.into()),
                    ("relnamespace", PUBLIC_NAMESPACE.into()),
                    ("relowner", SUPERUSER.into()),
                    ("relam", BTREE.into()),
                    ("relfilenode", i.oid.into()),
                    ("reltuples", V::F(-1.0)),
                    ("relpersistence", 'p'.into()),
                    ("relkind", 'i'.into()),
                    ("relnatts", i.columns.len().into()),
                    ("relispopulated", true.into()),
                    ("relreplident", 'n'.into()),
                ])?;
            }
        }
        // The catalog's own relations, so `'pg_class'::regclass` and the like resolve.
        for (position, name) in datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES
            .iter()
            .enumerate()
        {
            let view = matches!(
                *name,
                "pg_settings"
                    | "pg_views"
                    | "pg_matviews"
                    | "pg_roles"
                    | "pg_tables"
                    | "pg_stat_gssapi"
                    | "pg_stat_user_tables"
                    | "pg_replication_slots"
            );
            rows.push(vec![
                ("oid", pg_catalog_oid(name, position).into()),
                ("relname", (*name).into()),
                ("relnamespace", PG_CATALOG_NAMESPACE.into()),
                ("relowner", SUPERUSER.into()),
                ("relam", if view { 0 } else { HEAP }.into()),
                ("reltuples", V::F(-1.0)),
                ("relpersistence", 'p'.into()),
                ("relkind", if view { 'v' } else { 'r' }.into()),
                ("relispopulated", true.into()),
                ("relreplident", 'n'.into()),
            ])?;
        }
        Ok(())
    }
}

fn pg_attribute(rows: &mut Rows, tables: &[Arc<TableDef>]) -> Result<()> {
    let mut column = |relid: u32,
                      num: usize,
                      name: &str,
                      ty: &SqlType,
                      not_null: bool,
                      has_def: bool,
                      identity: Option<char>| {
        let len = ty.pg_type_len();
        rows.push(vec![
            ("attrelid", relid.into()),
            ("attname", name.into()),
            ("atttypid", ty.pg_type_oid().into()),
            ("attstattarget", (-1i64).into()),
            ("attlen", (len as i64).into()),
            ("attnum", num.into()),
            ("attndims", 0i64.into()),
            ("attcacheoff", (-1i64).into()),
            ("atttypmod", ty.pg_typmod().into()),
            ("attbyval", (len > 0 && len <= 8).into()),
            (
                "attalign",
                match len {
                    1 | 16 => 'c',
                    2 => 's',
                    8 => 'd',
                    _ => 'i',
                }
                .into(),
            ),
            // pg_type.typstorage: plain for fixed widths, main for numeric, else extended.
            (
                "attstorage",
                match ty {
                    _ if len > 0 => 'p',
                    SqlType::Numeric { .. } => 'm',
                    _ => 'x',
                }
                .into(),
            ),
            ("attnotnull", not_null.into()),
            ("atthasdef", has_def.into()),
            ("atthasmissing", false.into()),
            (
                "attidentity",
                identity.map(String::from).unwrap_or_default().into(),
            ),
            ("attgenerated", "".into()),
            ("attisdropped", false.into()),
            ("attislocal", true.into()),
            ("attinhcount", 0i64.into()),
            (
                "attcollation",
                if ty.is_text() { DEFAULT_COLLATION } else { 0 }.into(),
            ),
        ])
    };
    for def in tables {
        let relid = relation_oid(def.id);
        for (i, col) in def.columns.iter().enumerate() {
            let identity = identity_of(tables, &def.name, &col.name);
            column(
                relid,
                i + 1,
                &col.name,
                &col.ty,
                def.not_null(i),
                col.default_expr.is_some() && identity.is_none(),
                identity,
            )?;
        }
        for idx in indexes(def) {
            for (k, &c) in idx.columns.iter().enumerate() {
                let col = &def.columns[c];
                column(idx.oid, k + 1, &col.name, &col.ty, false, false, None)?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl SchemaProvider for PgCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        match OWN_TABLES.iter().find(|t| **t == lower) {
            Some(own) => Ok(Some(self.build(own).await?)),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// Functions over DuetDB's objects: `pg_get_constraintdef(oid [, pretty])`,
/// `pg_get_indexdef(oid [, column, pretty])`, `pg_get_expr(text, relation [, pretty])`,
/// and the `regclass` casts (see [`CatalogFunction::regclass`]).
pub struct CatalogFunction {
    name: &'static str,
    store: StoreRef,
    signature: Signature,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::fmt::Debug for PgCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgCatalog")
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.store, &other.store)
    }
}
impl Eq for CatalogFunction {}
impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl CatalogFunction {
    pub const TO_OID: &'static str = "duet_regclass";
    pub const TO_NAME: &'static str = "duet_regclass_name";
    pub const NAMES: [&'static str; 6] = [
        "pg_get_constraintdef",
        "pg_get_indexdef",
        "pg_get_viewdef",
        "pg_get_expr",
        Self::TO_OID,
        Self::TO_NAME,
    ];

    pub fn udf(name: &'static str, store: StoreRef) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            store,
            signature: Signature::variadic_any(Volatility::Stable),
        })
    }

    /// The definition of object `oid` (with `column` for an index's column), if it is one
    /// of DuetDB's.
    fn definition(&self, tables: &[Arc<TableDef>], oid: i64, column: i64) -> Option<String> {
        let oid = u32::try_from(oid).ok()?;
        for def in tables {
            match self.name {
                "pg_get_viewdef" => {
                    if relation_oid(def.id) == oid {
                        return def.view.as_ref().map(|v| format!(" {};", v.query.trim()));
                    }
                }
                "pg_get_constraintdef" => {
                    if let Some(c) = constraints(def, tables).into_iter().find(|c| c.oid == oid) {
                        return Some(c.definition);
                    }
                }
                _ => {
                    if let Some(idx) = indexes(def).into_iter().find(|i| i.oid == oid) {
                        return Some(if column > 0 {
                            let c = *idx.columns.get(column as usize - 1)?;
                            quote_ident(&def.columns[c].name)
                        } else {
                            index_definition(def, &idx)
                        });
                    }
                }
            }
        }
        None
    }

    /// `x::regclass` of a column or expression: a relation name's OID (42P01 if there is no
    /// such relation), an OID as it is; and `x::regclass::text`: the relation's name (an
    /// unknown OID as its number, as PostgreSQL prints it).
    fn regclass(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = &arrays[0];
        let tables = self.store.tables();
        let numeric = input.data_type().is_integer();
        let text = datafusion::arrow::compute::cast(input, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let oid_of = |i: usize| -> Result<Option<u32>> {
            if text.is_null(i) {
                return Ok(None);
            }
            let v = text.value(i);
            if numeric || v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
                return Ok(v.parse::<u32>().ok());
            }
            relation_by_name(&tables, v).map(Some).ok_or_else(|| {
                DataFusionError::External(Box::new(crate::error::PgErrorBox(
                    crate::error::PgError::new(
                        crate::error::SqlState::UndefinedTable,
                        format!("relation \"{v}\" does not exist"),
                    ),
                )))
            })
        };
        if self.name == Self::TO_OID {
            let out = (0..text.len())
                .map(|i| Ok(oid_of(i)?.map(|o| o as i32)))
                .collect::<Result<datafusion::arrow::array::Int32Array>>()?;
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let mut out = StringBuilder::new();
        for i in 0..text.len() {
            match oid_of(i)? {
                Some(oid) => {
                    out.append_value(relation_name(&tables, oid).unwrap_or_else(|| oid.to_string()))
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.name == Self::TO_OID {
            DataType::Int32
        } else {
            DataType::Utf8
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.name == Self::TO_OID || self.name == Self::TO_NAME {
            return self.regclass(args);
        }
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(first) = arrays.first() else {
            return Err(DataFusionError::Plan(format!(
                "function {}() does not exist",
                self.name
            )));
        };
        let mut out = StringBuilder::new();
        if self.name == "pg_get_expr" {
            // adbin and conbin hold the expression's text already.
            let text = datafusion::arrow::compute::cast(first, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            for i in 0..n {
                if text.is_null(i) {
                    out.append_null();
                } else {
                    out.append_value(text.value(i));
                }
            }
            return Ok(ColumnarValue::Array(Arc::new(out.finish())));
        }
        let oids = datafusion::arrow::compute::cast(first, &DataType::Int64)?;
        let oids = oids.as_primitive::<Int64Type>();
        let columns = match (self.name, arrays.get(1)) {
            ("pg_get_indexdef", Some(c)) => {
                Some(datafusion::arrow::compute::cast(c, &DataType::Int64)?)
            }
            _ => None,
        };
        let pretty = match (self.name, arrays.get(1)) {
            ("pg_get_constraintdef", Some(p)) if *p.data_type() == DataType::Boolean => {
                Some(p.as_boolean().clone())
            }
            _ => None,
        };
        let tables = self.store.tables();
        for i in 0..n {
            if oids.is_null(i) {
                out.append_null();
                continue;
            }
            let column = columns
                .as_ref()
                .map(|c| c.as_primitive::<Int64Type>())
                .filter(|c| !c.is_null(i))
                .map(|c| c.value(i))
                .unwrap_or(0);
            let pretty = self.name == "pg_get_constraintdef"
                && pretty.as_ref().is_some_and(|p| p.is_valid(i) && p.value(i));
            match self.definition(&tables, oids.value(i), column) {
                // The pretty form drops the parentheses around a CHECK's expression.
                Some(d) if pretty => match d
                    .strip_prefix("CHECK ((")
                    .and_then(|e| e.strip_suffix("))"))
                {
                    Some(e) => out.append_value(format!("CHECK ({e})")),
                    None => out.append_value(d),
                },
                Some(d) => out.append_value(d),
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `_pg_expandarray(array)`: the array's elements `x` with their positions `n`, as a list
/// of structs; a call of PostgreSQL's set-returning `information_schema._pg_expandarray`
/// is rewritten to `unnest` of this (pgjdbc's `getPrimaryKeys` and `getIndexInfo` use it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ExpandArray {
    signature: Signature,
}

impl Default for ExpandArray {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ExpandArray {
    pub const NAME: &'static str = "duet_expandarray";

    fn item_type() -> DataType {
        DataType::Struct(
            vec![
                Field::new("x", DataType::Int64, true),
                Field::new("n", DataType::Int64, false),
            ]
            .into(),
        )
    }
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::new_list(Self::item_type(), true))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let lists = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::new_list(DataType::Int64, true),
        )?;
        let lists = lists.as_list::<i32>();
        let mut out = Vec::with_capacity(lists.len());
        for i in 0..lists.len() {
            if lists.is_null(i) {
                out.push(ScalarValue::try_from(&self.return_type(&[])?)?);
                continue;
            }
            let values = lists.value(i);
            let values = values.as_primitive::<Int64Type>();
            let items = (0..values.len())
                .map(|k| {
                    let x = (!values.is_null(k)).then(|| values.value(k));
                    ScalarValue::Struct(Arc::new(
                        datafusion::arrow::array::StructArray::try_new(
                            match Self::item_type() {
                                DataType::Struct(f) => f,
                                _ => unreachable!(),
                            },
                            vec![
                                Arc::new(datafusion::arrow::array::Int64Array::from(vec![x])),
                                Arc::new(datafusion::arrow::array::Int64Array::from(vec![
                                    k as i64 + 1,
                                ])),
                            ],
                            None,
                        )
                        .expect("two columns of one row"),
                    ))
                })
                .collect::<Vec<_>>();
            out.push(ScalarValue::List(ScalarValue::new_list_nullable(
                &items,
                &Self::item_type(),
            )));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(out)?))
    }
}

/// `pg_type_is_visible(oid)` and the like: whether an object is visible on the search
/// path. Every type, function, operator and collation is in `pg_catalog`, which is always
/// on it.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsVisible {
    name: &'static str,
    signature: Signature,
}

impl IsVisible {
    pub const NAMES: [&'static str; 6] = [
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_operator_is_visible",
        "pg_opclass_is_visible",
        "pg_collation_is_visible",
        "pg_conversion_is_visible",
    ];

    pub fn udf(name: &'static str) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::any(1, Volatility::Stable),
        })
    }
}

impl ScalarUDFImpl for IsVisible {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let visible: datafusion::arrow::array::BooleanArray = (0..arrays[0].len())
            .map(|i| (!arrays[0].is_null(i)).then_some(true))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(visible)))
    }
}

/// The relation named `name` (`[public.]name`, quoted or not): a table, sequence or index of
/// the database, or a `pg_catalog` relation.
fn relation_by_name(tables: &[Arc<TableDef>], name: &str) -> Option<u32> {
    let unquote = |p: &str| -> String {
        match p.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(q) => q.replace("\"\"", "\""),
            None => p.to_lowercase(),
        }
    };
    let parts: Vec<String> = name.trim().split('.').map(unquote).collect();
    let (schema, rel) = match parts.as_slice() {
        [r] => (None, r.as_str()),
        [s, r] => (Some(s.as_str()), r.as_str()),
        _ => return None,
    };
    if schema.is_none_or(|s| s == "public") {
        for def in tables {
            if def.name == rel {
                return Some(relation_oid(def.id));
            }
            if let Some(i) = indexes(def).into_iter().find(|i| i.name == rel) {
                return Some(i.oid);
            }
        }
    }
    if schema.is_none_or(|s| s == "pg_catalog") {
        let catalog = datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;
        if let Some(p) = catalog.iter().position(|t| *t == rel) {
            return Some(pg_catalog_oid(rel, p));
        }
    }
    None
}

/// The table or sequence with OID `oid`.
pub fn relation_by_oid(store: &StoreRef, oid: u32) -> Option<Arc<TableDef>> {
    store
        .tables()
        .into_iter()
        .find(|t| relation_oid(t.id) == oid)
}

/// The name of relation `oid` as `oid::regclass::text` prints it (`-` for 0).
fn relation_name(tables: &[Arc<TableDef>], oid: u32) -> Option<String> {
    if oid == 0 {
        return Some("-".into());
    }
    for def in tables {
        if relation_oid(def.id) == oid {
            return Some(quote_ident(&def.name));
        }
        if let Some(i) = indexes(def).into_iter().find(|i| i.oid == oid) {
            return Some(quote_ident(i.name));
        }
    }
    let catalog = datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;
    catalog
        .iter()
        .enumerate()
        .find(|(p, t)| pg_catalog_oid(t, *p) == oid)
        .map(|(_, t)| t.to_string())
}

/// The arguments of a call in SQL's syntax tree.
/// A call's arguments, if every one is a plain expression (no name, no `*`).
pub(crate) fn plain_args(args: &[FunctionArg]) -> Option<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn sql_args(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// Rewrites `x::regclass` to `duet_regclass(x)` (a relation's name or OID as its OID, 42P01
/// for an unknown name, resolved when the statement runs) and `x::regclass::text` to
/// `duet_regclass_name(x)` (the relation's name). Cheap to skip: only statements whose text
/// mentions `regclass` have such casts.
pub fn rewrite_regclass(statement: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{VisitMut, VisitorMut};
    struct Rewrite;
    impl VisitorMut for Rewrite {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::Cast {
                expr: inner,
                data_type,
                ..
            } = expr
            {
                let ty = data_type.to_string().to_ascii_lowercase();
                let ty = ty.strip_prefix("pg_catalog.").unwrap_or(&ty);
                if ty == "regclass" {
                    // A relation's name or OID as its OID (datafusion-pg-catalog rewrote
                    // literal and parameter casts already).
                    *expr = crate::pgsemantics::call_function(
                        CatalogFunction::TO_OID,
                        vec![inner.as_ref().clone()],
                    );
                } else if matches!(ty, "text" | "varchar" | "character varying" | "name") {
                    // `oid::regclass::text`: the relation's name.
                    if let Expr::Function(f) = inner.as_ref() {
                        if f.name.to_string() == CatalogFunction::TO_OID {
                            *expr = crate::pgsemantics::call_function(
                                CatalogFunction::TO_NAME,
                                sql_args(f),
                            );
                        }
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    regclass_outputs_as_names(statement);
    let _ = statement.visit(&mut Rewrite);
}

/// A `regclass` the statement returns prints as the relation's name (psql's `\d` shows the
/// referencing table of a foreign key so): `x::regclass` as a whole output column of the
/// statement's own select list is `x::regclass::text`, named as PostgreSQL names it.
fn regclass_outputs_as_names(statement: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{DataType as AstType, Ident, SelectItem, SetExpr, Statement};
    fn body(set: &mut SetExpr) {
        match set {
            SetExpr::Select(select) => {
                for item in select.projection.iter_mut() {
                    let (expr, alias) = match item {
                        SelectItem::UnnamedExpr(e) => (e, None),
                        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                        _ => continue,
                    };
                    let Expr::Cast {
                        expr: inner,
                        data_type,
                        ..
                    } = expr
                    else {
                        continue;
                    };
                    let ty = data_type.to_string().to_ascii_lowercase();
                    if ty.strip_prefix("pg_catalog.").unwrap_or(&ty) != "regclass" {
                        continue;
                    }
                    let name = alias.unwrap_or_else(|| match inner.as_ref() {
                        Expr::Identifier(i) => i.clone(),
                        Expr::CompoundIdentifier(parts) => parts
                            .last()
                            .cloned()
                            .unwrap_or_else(|| Ident::new("regclass")),
                        _ => Ident::new("regclass"),
                    });
                    let text = Expr::Cast {
                        kind: sqlparser::ast::CastKind::DoubleColon,
                        expr: Box::new(expr.clone()),
                        data_type: AstType::Text,
                        array: false,
                        format: None,
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: text,
                        alias: name,
                    };
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                body(left);
                body(right);
            }
            SetExpr::Query(q) => body(&mut q.body),
            _ => {}
        }
    }
    if let Statement::Query(q) = statement {
        body(&mut q.body);
    }
}

/// Rewrites PostgreSQL's set-returning functions that catalog queries call in a select
/// list to `unnest` of a list, which likewise gives one row per element:
/// `information_schema._pg_expandarray(a)` to `unnest(duet_expandarray(a))`, and
/// `generate_subscripts(a, d)` to `unnest(generate_series(1, array_length(a, d)))`.
pub fn rewrite_set_functions(statement: &mut sqlparser::ast::Statement) {
    use sqlparser::ast::{AccessExpr, Value, VisitMut, VisitorMut};
    struct Rewrite;
    impl VisitorMut for Rewrite {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
            if let Expr::CompoundFieldAccess { root, access_chain } = expr {
                // `(composite).field`, as `get_field(composite, 'field')`.
                let fields: Option<Vec<String>> = access_chain
                    .iter()
                    .map(|a| match a {
                        AccessExpr::Dot(Expr::Identifier(i)) => Some(i.value.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                if let (Some(fields), Expr::Nested(inner)) = (fields, root.as_ref()) {
                    let mut out = inner.as_ref().clone();
                    for f in fields {
                        out = crate::pgsemantics::call_function(
                            "get_field",
                            vec![out, Expr::value(Value::SingleQuotedString(f))],
                        );
                    }
                    *expr = out;
                }
                return std::ops::ControlFlow::Continue(());
            }
            let Expr::Function(f) = expr else {
                return std::ops::ControlFlow::Continue(());
            };
            let name = f.name.to_string().to_ascii_lowercase();
            let name = name.rsplit('.').next().unwrap_or_default().to_string();
            let a = sql_args(f);
            match (name.as_str(), a.as_slice()) {
                ("_pg_expandarray", [array]) => {
                    *expr = crate::pgsemantics::call_function(
                        "unnest",
                        vec![crate::pgsemantics::call_function(
                            ExpandArray::NAME,
                            vec![array.clone()],
                        )],
                    );
                }
                ("generate_subscripts", [array, dim]) => {
                    let one = Expr::value(Value::Number("1".into(), false));
                    let upper = crate::pgsemantics::call_function(
                        "array_length",
                        vec![array.clone(), dim.clone()],
                    );
                    *expr = crate::pgsemantics::call_function(
                        "unnest",
                        vec![crate::pgsemantics::call_function(
                            "generate_series",
                            vec![one, upper],
                        )],
                    );
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }

        /// `FROM pg_catalog.unnest(a) x` (psql's `\d+`) as the `unnest` relation, and
        /// `pg_catalog.generate_series(…)` without its schema: DataFusion knows them by
        /// their bare names only.
        fn post_visit_table_factor(
            &mut self,
            factor: &mut sqlparser::ast::TableFactor,
        ) -> std::ops::ControlFlow<()> {
            use sqlparser::ast::{ObjectName, TableFactor};
            let TableFactor::Table {
                name,
                args: Some(args),
                alias,
                with_ordinality,
                ..
            } = factor
            else {
                return std::ops::ControlFlow::Continue(());
            };
            let parts: Vec<String> = name
                .0
                .iter()
                .map(|p| p.to_string().to_ascii_lowercase())
                .collect();
            let bare = match parts.as_slice() {
                [schema, f] if schema == "pg_catalog" => f.clone(),
                // Some compatibility rewrites strip the schema first.
                [f] if f == "unnest" || f == "pg_partition_ancestors" => f.clone(),
                _ => return std::ops::ControlFlow::Continue(()),
            };
            let exprs = plain_args(&args.args);
            if let (Some(exprs), "unnest") = (exprs, bare.as_str()) {
                *factor = TableFactor::UNNEST {
                    alias: alias.clone(),
                    array_exprs: exprs,
                    with_offset: false,
                    with_offset_alias: None,
                    with_ordinality: false,
                };
            } else if bare == "pg_partition_ancestors" {
                // No relation is a partition: no rows (psql's `\d TABLE` lists triggers
                // with it).
                let columns = if *with_ordinality {
                    "NULL::bigint AS relid, NULL::bigint AS ordinality"
                } else {
                    "NULL::bigint AS pg_partition_ancestors"
                };
                let query =
                    sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                        .try_with_sql(&format!("SELECT {columns} WHERE false"))
                        .and_then(|mut p| p.parse_query());
                if let Ok(query) = query {
                    *factor = TableFactor::Derived {
                        lateral: false,
                        subquery: query,
                        alias: alias.clone(),
                        sample: None,
                    };
                }
            } else if bare == "generate_series" {
                *name = ObjectName::from(vec![sqlparser::ast::Ident::new(bare)]);
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Rewrite);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_where_needed() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("a b"), "\"a b\"");
    }

    #[test]
    fn defaults_print_as_postgresql_stores_them() {
        assert_eq!(
            default_text("nextval('t_id_seq')", &SqlType::Int64),
            "nextval('t_id_seq'::regclass)"
        );
        assert_eq!(default_text("42", &SqlType::Int32), "42");
        assert_eq!(default_text("'a''b'", &SqlType::Text), "'a''b'::text");
        assert_eq!(
            default_text("'x'", &SqlType::Varchar(Some(3))),
            "'x'::character varying"
        );
    }
}

/// `format_type(oid, typmod)` as PostgreSQL prints it: datafusion-pg-catalog's, but `-` for
/// OID 0, `oid[]` and `name[]` (the library printed `oid(1028)`), `numeric(p,0)` with its scale (the library printed `numeric(10)`), and arrays of
/// `varchar(n)`, `char(n)` and `numeric(p,s)` with their modifier (psql's `\d` showed
/// `character varying[]` for a `varchar(5)[]` column).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FormatType {
    signature: Signature,
}

impl Default for FormatType {
    fn default() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Stable),
        }
    }
}

/// The name of `numeric`, `varchar` or `bpchar` (by OID) with its type modifier; `None` for
/// other types or no modifier.
fn with_typmod(oid: i32, typmod: i32) -> Option<String> {
    if typmod < 4 {
        return None;
    }
    let m = typmod - 4;
    match oid {
        1700 => Some(format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff)),
        1043 => Some(format!("character varying({m})")),
        1042 => Some(format!("character({m})")),
        _ => None,
    }
}

impl ScalarUDFImpl for FormatType {
    fn name(&self) -> &str {
        "format_type"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, StringBuilder};
        use datafusion::arrow::datatypes::{Field, Int32Type};
        let (arrays, scalar) = crate::pgsemantics::arg_arrays(&args)?;
        let int32 = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Int32);
        let (oids, mods) = (int32(&arrays[0])?, int32(&arrays[1])?);
        let n = oids.len();
        let library = datafusion_pg_catalog::pg_catalog::format_type::create_format_type_udf();
        let base = library
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![
                    ColumnarValue::Array(oids.clone()),
                    ColumnarValue::Array(mods.clone()),
                ],
                arg_fields: vec![
                    Arc::new(Field::new("oid", DataType::Int32, true)),
                    Arc::new(Field::new("typmod", DataType::Int32, true)),
                ],
                number_rows: n,
                return_field: args.return_field.clone(),
                config_options: args.config_options.clone(),
            })?
            .to_array(n)?;
        let base = datafusion::arrow::compute::cast(&base, &DataType::Utf8)?;
        let base = base.as_string::<i32>();
        let (oids, mods) = (
            oids.as_primitive::<Int32Type>(),
            mods.as_primitive::<Int32Type>(),
        );
        let mut out = StringBuilder::new();
        for i in 0..n {
            if oids.is_null(i) {
                out.append_null();
                continue;
            }
            let (oid, typmod) = (
                oids.value(i),
                if mods.is_null(i) { -1 } else { mods.value(i) },
            );
            let element = match oid {
                1231 => Some(1700),
                1015 => Some(1043),
                1014 => Some(1042),
                _ => None,
            };
            let own = match (oid, element) {
                (0, _) => Some("-".to_string()),
                (1028, _) => Some("oid[]".to_string()),
                (1003, _) => Some("name[]".to_string()),
                (_, Some(e)) => with_typmod(e, typmod).map(|t| format!("{t}[]")),
                (1700, None) => with_typmod(1700, typmod),
                _ => None,
            };
            match own {
                Some(t) => out.append_value(t),
                None if base.is_null(i) => out.append_null(),
                None => out.append_value(base.value(i)),
            }
        }
        crate::pgsemantics::columnar(Arc::new(out.finish()), scalar)
    }
}
