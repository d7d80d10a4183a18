//! The crate graph runs one way (CONTRIBUTING.md, "Crate map"): read from Cargo.lock, so a
//! new dependency that breaks the layering, or puts RocksDB under the column replica, fails
//! here rather than in review.

use std::collections::{BTreeMap, BTreeSet};

/// Each package's direct dependencies, from the workspace's Cargo.lock (a dependency
/// written `name version` when two versions are locked is reduced to its name).
fn lock_graph() -> BTreeMap<String, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let text = std::fs::read_to_string(path).expect("Cargo.lock");
    let lock: toml::Value = toml::from_str(&text).expect("Cargo.lock parses");
    let mut graph = BTreeMap::new();
    for p in lock["package"].as_array().expect("packages") {
        let name = p["name"].as_str().unwrap().to_string();
        let deps: Vec<String> = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    .map(|v| v.as_str().unwrap().split(' ').next().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        graph.entry(name).or_insert_with(Vec::new).extend(deps);
    }
    graph
}

fn closure(graph: &BTreeMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn crates_depend_only_downwards() {
    let graph = lock_graph();
    // What each crate may use of DuetDB's own crates, directly or not.
    let allowed: &[(&str, &[&str])] = &[
        ("duet-common", &[]),
        ("duet-replication", &[]),
        ("duet-rowstore", &["duet-common", "duet-replication"]),
        ("duet-colstore", &["duet-common", "duet-replication"]),
        ("duet-wire", &["duet-common"]),
        (
            "duet-router",
            &[
                "duet-common",
                "duet-replication",
                "duet-rowstore",
                "duet-colstore",
            ],
        ),
        (
            "duet-sql",
            &[
                "duet-common",
                "duet-replication",
                "duet-rowstore",
                "duet-colstore",
                "duet-router",
                "duet-wire",
            ],
        ),
    ];
    for (krate, may) in allowed {
        assert!(graph.contains_key(*krate), "{krate} is not in Cargo.lock");
        let own: BTreeSet<String> = closure(&graph, krate)
            .into_iter()
            .filter(|d| d.starts_with("duet") && d != "duet-tests")
            .collect();
        let may: BTreeSet<String> = may.iter().map(|s| s.to_string()).collect();
        let extra: Vec<&String> = own.difference(&may).collect();
        assert!(
            extra.is_empty(),
            "{krate} depends on {extra:?}, above or beside it"
        );
    }
}

#[test]
fn the_column_replica_and_the_wire_link_no_rocksdb() {
    let graph = lock_graph();
    for krate in ["duet-colstore", "duet-common", "duet-wire"] {
        let deps = closure(&graph, krate);
        for engine in ["rocksdb", "librocksdb-sys"] {
            assert!(!deps.contains(engine), "{krate} pulls in {engine}");
        }
    }
    // The check itself sees RocksDB where it is.
    assert!(closure(&graph, "duet-rowstore").contains("rocksdb"));
}
