//! The databases of one server (see `duet_sql::databases`): the data directory is the first
//! database, `duetdb`; every other one is a node of its own in
//! `<data>/databases/<name in hex>.<created>/`, opened on first use and kept open, with its
//! own autoanalyze task. A member of a cluster has only the first database (the one its
//! Raft log replicates); others are refused with 0A000. Roles stay in the first database's store. A dropped database's
//! node is not closed until the server stops (its Raft and apply tasks run on the server's
//! runtime); its files are removed at the next start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use duet_sql::databases::{DatabaseError, Databases, DEFAULT_DATABASE, POSTGRES_DATABASE};
use duet_sql::SharedRef;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::node::{DuetNode, NodeRef};

struct Open {
    _node: NodeRef,
    shared: SharedRef,
    stop_analyze: watch::Sender<bool>,
}

/// A server's databases.
pub struct ServerDatabases {
    dir: PathBuf,
    /// Weak: the first database's state owns this set.
    root: Weak<duet_sql::Shared>,
    roles: duet_rowstore::StoreRef,
    open: Mutex<HashMap<String, Open>>,
    me: Weak<ServerDatabases>,
    /// A member of a cluster: only the first database is replicated, so it is the only one.
    clustered: bool,
}

/// What a cluster member answers for any database but the first.
fn clustered_only(name: &str) -> DatabaseError {
    DatabaseError::Unsupported(format!(
        "database \"{name}\" in a cluster (only the database \"{DEFAULT_DATABASE}\" is \
         replicated across its members)"
    ))
}

fn hex(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Makes `root` (the sessions' state of `node`, the data directory's database) the first
/// database of a server whose other databases live under `node`'s data directory.
pub fn attach(node: &NodeRef, root: &SharedRef) {
    let databases: Arc<dyn Databases> = Arc::new_cyclic(|me| ServerDatabases {
        dir: node.data_dir().join("databases"),
        root: Arc::downgrade(root),
        roles: node.store.clone(),
        open: Mutex::new(HashMap::new()),
        me: me.clone(),
        clustered: node.cluster().is_some(),
    });
    root.join_server(DEFAULT_DATABASE, &databases, node.store.clone(), true);
    // The files of databases dropped while the server last ran.
    if let Ok(entries) = std::fs::read_dir(node.data_dir().join("databases")) {
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|f| f.starts_with(".dropped-"))
            {
                if let Err(err) = std::fs::remove_dir_all(e.path()) {
                    tracing::warn!(error = %err, path = %e.path().display(), "could not remove a dropped database's files");
                }
            }
        }
    }
}

impl ServerDatabases {
    /// The directory of database `name`: `<name in hex>.<when it was created>` (a database
    /// created again after a DROP gets a new one: the dropped one's files may still be
    /// open until the server restarts).
    fn path(&self, name: &str) -> Option<PathBuf> {
        let prefix = format!("{}.", hex(name));
        std::fs::read_dir(&self.dir)
            .ok()?
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|f| f.starts_with(&prefix))
            })
            .map(|e| e.path())
    }

    fn new_path(&self, name: &str) -> PathBuf {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.dir.join(format!("{}.{now}", hex(name)))
    }

    fn exists(&self, name: &str) -> bool {
        name == DEFAULT_DATABASE || name == POSTGRES_DATABASE || self.path(name).is_some()
    }

    /// Opens database `name`'s node (creating its directory), starts its autoanalyze and
    /// enters it in `open` (held by the caller, so that one name is opened once).
    fn open_node(
        &self,
        open: &mut HashMap<String, Open>,
        name: &str,
    ) -> Result<SharedRef, DatabaseError> {
        let root = self
            .root
            .upgrade()
            .ok_or_else(|| DatabaseError::Failed("the server is shutting down".into()))?;
        let path = self.path(name).unwrap_or_else(|| self.new_path(name));
        let node = DuetNode::open(&path).map_err(|e| {
            DatabaseError::Failed(format!("could not open database \"{name}\": {e}"))
        })?;
        let shared =
            duet_sql::Shared::new_in_server(node.store.clone(), Some(node.services()), &root);
        let me: Arc<dyn Databases> = self
            .me
            .upgrade()
            .ok_or_else(|| DatabaseError::Failed("the server is shutting down".into()))?;
        shared.join_server(name, &me, self.roles.clone(), false);
        let (stop_analyze, stopped) = watch::channel(false);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(duet_sql::analyze::autoanalyze(shared.clone(), stopped));
        }
        open.insert(
            name.to_string(),
            Open {
                _node: node,
                shared: shared.clone(),
                stop_analyze,
            },
        );
        Ok(shared)
    }
}

impl Databases for ServerDatabases {
    fn get(&self, name: &str) -> Result<Option<SharedRef>, DatabaseError> {
        if name == DEFAULT_DATABASE {
            return Ok(self.root.upgrade());
        }
        if self.clustered {
            return Err(clustered_only(name));
        }
        let mut open = self.open.lock();
        if let Some(o) = open.get(name) {
            return Ok(Some(o.shared.clone()));
        }
        if !self.exists(name) {
            return Ok(None);
        }
        self.open_node(&mut open, name).map(Some)
    }

    fn names(&self) -> Vec<String> {
        let mut names = vec![DEFAULT_DATABASE.to_string(), POSTGRES_DATABASE.to_string()];
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let file = e.file_name();
                let hex_name = file
                    .to_str()
                    .and_then(|f| f.split_once('.'))
                    .map(|(h, _)| h);
                // A dropped database's files (`.dropped-…`, removed at the next start) name
                // none.
                if let Some(name) = hex_name.and_then(unhex).filter(|n| !n.is_empty()) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }

    fn create(&self, name: &str) -> Result<(), DatabaseError> {
        if self.clustered {
            return Err(clustered_only(name));
        }
        let mut open = self.open.lock();
        if self.exists(name) {
            return Err(DatabaseError::Exists);
        }
        self.open_node(&mut open, name).map(|_| ())
    }

    fn drop_database(&self, name: &str) -> Result<(), DatabaseError> {
        if name == POSTGRES_DATABASE || name == DEFAULT_DATABASE {
            return Err(DatabaseError::Unsupported(format!(
                "dropping the \"{name}\" database"
            )));
        }
        if !self.exists(name) {
            return Err(DatabaseError::Missing);
        }
        // As PostgreSQL does, wait up to 5 s for sessions that are ending to be gone; once
        // marked dropped, no session logs in to it any more.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut open = self.open.lock();
        if let Some(o) = open.get(name) {
            let shared = o.shared.clone();
            drop(open);
            loop {
                match shared.mark_dropped() {
                    Ok(()) => break,
                    Err(n) if std::time::Instant::now() >= deadline => {
                        return Err(DatabaseError::InUse(n))
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
            open = self.open.lock();
        }
        if let Some(o) = open.remove(name) {
            let _ = o.stop_analyze.send(true);
        }
        // Out of the way at once (a new database of the same name starts empty); its files
        // are removed when the server starts next (its node's tasks may still hold them).
        let Some(path) = self.path(name) else {
            return Err(DatabaseError::Missing);
        };
        let gone = self.dir.join(format!(
            ".dropped-{}",
            path.file_name().and_then(|f| f.to_str()).unwrap_or("x")
        ));
        std::fs::rename(&path, &gone).map_err(|e| {
            DatabaseError::Failed(format!("could not remove database \"{name}\": {e}"))
        })?;
        Ok(())
    }
}
