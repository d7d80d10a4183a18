//! Table definitions, as both replicas read them. The catalog is persisted in the row store
//! (under the catalog prefix, see [`crate::codec::key`]) as JSON, written in the same atomic
//! batch as the data change a DDL statement makes, so it survives restarts and crashes with
//! the data; the learner reads the same JSON from the Raft log.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::memcmp;
use crate::error::{Error, Result};
use crate::types::{Datum, Row, SqlType};

/// Version of the persisted table-definition format. Bump on incompatible change and keep
/// a reader for the old one (see the compatibility test below).
pub const CATALOG_FORMAT: u32 = 1;

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text (evaluated by the SQL layer on insert).
    pub default_expr: Option<String>,
    /// Value of this column in rows written before the column was added.
    #[serde(default = "null_datum")]
    pub missing: Datum,
}

fn null_datum() -> Datum {
    Datum::Null
}

/// A secondary index (or the index behind a UNIQUE constraint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDef {
    pub id: u32,
    pub name: String,
    /// Column positions, in index order.
    pub columns: Vec<usize>,
    pub unique: bool,
    /// Behind a `UNIQUE` constraint (`pg_constraint` lists it), not a `CREATE UNIQUE INDEX`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub constraint: bool,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub format: u32,
    pub id: u32,
    pub name: String,
    /// Where the rows live; TRUNCATE and ADD PRIMARY KEY move a table to a fresh storage id.
    pub storage_id: u32,
    pub columns: Vec<ColumnDef>,
    /// Column positions of the primary key; empty means a hidden 64-bit row id.
    pub primary_key: Vec<usize>,
    /// Name of the primary key constraint.
    #[serde(default)]
    pub pk_name: String,
    pub indexes: Vec<IndexDef>,
    /// Whether the table has a column replica (`ALTER TABLE … SET COLUMNAR REPLICA 0|1`).
    #[serde(default = "yes")]
    pub columnar: bool,
    /// Set for a sequence: a relation of one row (`last_value`, `log_cnt`, `is_called`)
    /// that `nextval` advances, as in PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceDef>,
    /// CHECK constraints: each row written must not make one false.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDef>,
    /// FOREIGN KEY constraints of this table (the referencing side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Set for a view: a relation without rows of its own, whose query is read in its place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<ViewDef>,
}

/// A view (`CREATE VIEW`): its query and the names it gives the query's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    /// The query, as SQL text (PostgreSQL's dialect).
    pub query: String,
    /// The names the query's output columns had when the view was created, in order; the
    /// view's own column names are the table definition's columns.
    pub query_columns: Vec<String>,
    /// Ids of the tables and views it reads (DROP … RESTRICT refuses to drop them).
    pub depends_on: Vec<u32>,
}

impl TableDef {
    /// A table with rows: neither a sequence nor a view.
    pub fn has_rows(&self) -> bool {
        self.sequence.is_none() && self.view.is_none()
    }
}

/// A FOREIGN KEY constraint: the referencing columns of its table must hold, when none of
/// them is NULL (MATCH SIMPLE), the values of a row of `ref_table` in `ref_columns`, which
/// are that table's primary key or a unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<usize>,
    pub ref_table: String,
    pub ref_columns: Vec<usize>,
    pub on_delete: RefAction,
    pub on_update: RefAction,
    /// `DEFERRABLE`: `SET CONSTRAINTS` may move its check to COMMIT.
    pub deferrable: bool,
    /// `INITIALLY DEFERRED`: checked at COMMIT unless `SET CONSTRAINTS … IMMEDIATE`.
    pub initially_deferred: bool,
}

/// What a change to a referenced row does to the rows referencing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl RefAction {
    /// How PostgreSQL spells it.
    pub fn sql(self) -> &'static str {
        match self {
            RefAction::NoAction => "NO ACTION",
            RefAction::Restrict => "RESTRICT",
            RefAction::Cascade => "CASCADE",
            RefAction::SetNull => "SET NULL",
            RefAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// A CHECK constraint: its name and its condition as SQL text over the table's columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    pub name: String,
    pub expr: String,
}

/// A sequence's options (`CREATE SEQUENCE`, or the one behind a `serial` or identity
/// column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDef {
    /// `smallint`, `integer` or `bigint` (`AS type`; bounds the default limits).
    pub ty: SqlType,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub start: i64,
    /// Values each allocation makes durable at once (PostgreSQL's `CACHE`, at least the
    /// 32 values PostgreSQL logs ahead); a crash skips the unused rest, never reuses one.
    pub cache: i64,
    pub cycle: bool,
    /// `OWNED BY table.column`: dropped with the table.
    #[serde(default)]
    pub owned_by: Option<(String, String)>,
    /// Behind an identity column: `always` or `by default` (`GENERATED … AS IDENTITY`).
    #[serde(default)]
    pub identity: Option<String>,
}

fn yes() -> bool {
    true
}

/// Shared handle to a table definition.
pub type TableDefRef = Arc<TableDef>;

/// Type of the hidden row id.
pub const ROWID_TYPE: SqlType = SqlType::Int64;

impl TableDef {
    /// Position of a column by (already case-folded) name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether column `i` must hold a value (declared NOT NULL, or part of the primary key).
    pub fn not_null(&self, i: usize) -> bool {
        !self.columns[i].nullable || self.primary_key.contains(&i)
    }

    /// Whether rows are keyed by a hidden row id.
    pub fn has_hidden_rowid(&self) -> bool {
        self.primary_key.is_empty()
    }

    /// Types of the key tuple.
    pub fn pk_types(&self) -> Vec<&SqlType> {
        if self.has_hidden_rowid() {
            vec![&ROWID_TYPE]
        } else {
            self.primary_key
                .iter()
                .map(|&i| &self.columns[i].ty)
                .collect()
        }
    }

    /// The columns whose values carry a display scale of their own (unconstrained
    /// `numeric`), whose companions scans read at `numeric::COMPANION_BASE + c`.
    pub fn scaled_columns(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&c| self.columns[c].ty.is_unconstrained_numeric())
            .collect()
    }

    /// Column types in order.
    pub fn types(&self) -> Vec<&SqlType> {
        self.columns.iter().map(|c| &c.ty).collect()
    }

    /// Decodes a stored row of this table; columns the row predates read their `missing`
    /// value.
    pub fn decode_row(&self, payload: &[u8]) -> Result<Row> {
        crate::codec::row::decode_row(payload, &self.types(), &|i| self.columns[i].missing.clone())
    }

    /// The primary key values of `row` (not for hidden-rowid tables).
    pub fn pk_of(&self, row: &Row) -> Vec<Datum> {
        self.primary_key.iter().map(|&i| row[i].clone()).collect()
    }

    /// Encoded index tuple of `row` for `index`.
    pub fn index_tuple(&self, index: &IndexDef, row: &Row) -> (Vec<u8>, bool) {
        let datums: Vec<Datum> = index.columns.iter().map(|&i| row[i].clone()).collect();
        let has_null = datums.iter().any(Datum::is_null);
        (memcmp::encode_tuple(&datums), has_null)
    }

    /// Index by name.
    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Serialises for the catalog.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| {
            Error::Internal(format!(
                "Failed to encode table definition {}: {e}",
                self.name
            ))
        })
    }

    /// Reads a stored definition.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let def: TableDef = serde_json::from_slice(b)
            .map_err(|e| Error::Corrupt(format!("table definition: {e}")))?;
        if def.format != CATALOG_FORMAT {
            return Err(Error::Corrupt(format!(
                "table definition format {} is not supported",
                def.format
            )));
        }
        Ok(def)
    }
}

/// A role (`CREATE ROLE`/`CREATE USER`): who may log in, how, and what it may manage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    /// Its OID is `16384 + id` (ids come from the same allocator as tables').
    pub id: u32,
    pub name: String,
    pub superuser: bool,
    pub login: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub inherit: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// `CONNECTION LIMIT`; -1: none.
    pub connection_limit: i32,
    /// The SCRAM-SHA-256 verifier, in PostgreSQL's text form
    /// (`SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`); never the password.
    pub password: Option<String>,
    /// `VALID UNTIL`, as the statement gave it (checked at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// The role `initdb` creates: the superuser every new data directory has, with PostgreSQL's
/// OID for it (10). It needs no catalog entry until `ALTER ROLE` changes it.
pub const BOOTSTRAP_SUPERUSER: &str = "postgres";

impl RoleDef {
    /// The bootstrap superuser as a new data directory has it (no password).
    pub fn bootstrap() -> RoleDef {
        RoleDef {
            id: 0,
            name: BOOTSTRAP_SUPERUSER.into(),
            superuser: true,
            login: true,
            createdb: true,
            createrole: true,
            inherit: true,
            replication: true,
            bypassrls: true,
            connection_limit: -1,
            password: None,
            valid_until: None,
        }
    }

    /// A role with no attributes (what a session whose role was dropped acts as).
    pub fn nobody(name: &str) -> RoleDef {
        RoleDef {
            name: name.to_string(),
            superuser: false,
            login: false,
            createdb: false,
            createrole: false,
            inherit: false,
            replication: false,
            bypassrls: false,
            ..RoleDef::bootstrap()
        }
    }

    /// The OID `pg_authid` shows.
    pub fn oid(&self) -> u32 {
        if self.name == BOOTSTRAP_SUPERUSER && self.id == 0 {
            10
        } else {
            16384 + self.id
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("Failed to encode role {}: {e}", self.name)))
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        serde_json::from_slice(b).map_err(|e| Error::Corrupt(format!("role definition: {e}")))
    }
}

/// The set of live tables and roles, by name.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    tables: HashMap<String, TableDefRef>,
    roles: HashMap<String, Arc<RoleDef>>,
}

impl Catalog {
    /// Applies one catalog key's new payload (`None`: deleted) as it comes from the log or
    /// the store: a table definition or a role.
    pub fn apply(&mut self, key: &[u8], payload: Option<&[u8]>) -> Result<()> {
        if let Some(name) = crate::codec::key::role_name(key) {
            match payload {
                Some(p) => {
                    self.roles
                        .insert(name.to_string(), Arc::new(RoleDef::from_bytes(p)?));
                }
                None => {
                    self.roles.remove(name);
                }
            }
            return Ok(());
        }
        match payload {
            Some(p) => self.put(Arc::new(TableDef::from_bytes(p)?)),
            None => {
                let id = crate::codec::key::catalog_id(key)
                    .ok_or_else(|| Error::Corrupt("catalog key".into()))?;
                let name = self.tables().find(|t| t.id == id).map(|t| t.name.clone());
                if let Some(name) = name {
                    self.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// A role by name; the bootstrap superuser exists even before it is stored.
    pub fn role(&self, name: &str) -> Option<Arc<RoleDef>> {
        self.roles
            .get(name)
            .cloned()
            .or_else(|| (name == BOOTSTRAP_SUPERUSER).then(|| Arc::new(RoleDef::bootstrap())))
    }

    /// Every role, the bootstrap superuser included, by name.
    pub fn roles(&self) -> Vec<Arc<RoleDef>> {
        let mut all: Vec<_> = self.roles.values().cloned().collect();
        if !self.roles.contains_key(BOOTSTRAP_SUPERUSER) {
            all.push(Arc::new(RoleDef::bootstrap()));
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn get(&self, name: &str) -> Option<TableDefRef> {
        self.tables.get(name).cloned()
    }
    /// Adds or replaces a table (a renamed one leaves its old name).
    pub fn put(&mut self, def: TableDefRef) {
        let renamed = self
            .tables
            .values()
            .find(|t| t.id == def.id && t.name != def.name)
            .map(|t| t.name.clone());
        if let Some(old) = renamed {
            self.tables.remove(&old);
        }
        self.tables.insert(def.name.clone(), def);
    }
    pub fn remove(&mut self, name: &str) -> Option<TableDefRef> {
        self.tables.remove(name)
    }
    pub fn tables(&self) -> impl Iterator<Item = &TableDefRef> {
        self.tables.values()
    }
    /// Finds the table that owns index `name`.
    pub fn table_of_index(&self, name: &str) -> Option<TableDefRef> {
        self.tables
            .values()
            .find(|t| t.index(name).is_some())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The persisted format must stay readable: this is a definition as format 1 writes it.
    #[test]
    fn reads_format_1() {
        let stored = br#"{"format":1,"id":3,"name":"t","storage_id":4,"columns":[{"name":"a","ty":"Int32","nullable":false,"default_expr":null,"missing":"Null"},{"name":"b","ty":{"Varchar":10},"nullable":true,"default_expr":"'x'","missing":{"Text":"x"}}],"primary_key":[0],"pk_name":"t_pkey","indexes":[{"id":5,"name":"t_b","columns":[1],"unique":true}]}"#;
        let def = TableDef::from_bytes(stored).unwrap();
        assert_eq!(def.columns[1].ty, SqlType::Varchar(Some(10)));
        assert_eq!(def.columns[1].missing, Datum::Text("x".into()));
        assert_eq!(def.indexes[0].name, "t_b");
        let again = TableDef::from_bytes(&def.to_bytes().unwrap()).unwrap();
        assert_eq!(again, def);
    }
}
