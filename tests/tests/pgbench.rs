//! pgbench, unmodified (Debian's, from the postgresql-15 package), against DuetDB: `-i`, then
//! every built-in script in every query mode with 0 failed transactions. `tpcb-like` has all
//! clients update the one branch row: READ COMMITTED's row locks make them wait for each
//! other and update the newest version, as in PostgreSQL.

use crate::{int, rows};
use duet_tests::ClusterBuilder;

fn pgbench(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("pgbench")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", "postgres"])
        .args(args)
        .arg("duetdb")
        .output()
        .expect("pgbench (Debian's postgresql-15 package) must be installed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs_every_builtin_script_in_every_mode() {
    let cluster = ClusterBuilder::new("pgbench").build().await.unwrap();
    let addr = cluster.addr();
    // -i: drop, create, client-side COPY (with FREEZE on), VACUUM ANALYZE, primary keys.
    let (ok, out) = tokio::task::spawn_blocking(move || pgbench(addr, &["-i", "-s", "1"]))
        .await
        .unwrap();
    assert!(ok, "{out}");
    let c = cluster.client().await.unwrap();
    assert_eq!(
        int(&c, "SELECT count(*) FROM pgbench_accounts").await,
        100_000
    );
    assert_eq!(int(&c, "SELECT count(*) FROM pgbench_tellers").await, 10);
    assert_eq!(int(&c, "SELECT count(*) FROM pgbench_branches").await, 1);
    let balance = "SELECT sum(abalance) FROM pgbench_accounts";
    let mut tpcb_total = 0i64;
    for mode in ["simple", "extended", "prepared"] {
        for script in ["-S", "-N", "-b tpcb-like"] {
            let before = int(&c, balance).await;
            let (ok, out) = tokio::task::spawn_blocking(move || {
                let mut args = vec!["-T", "2", "-c", "4", "-j", "2", "-M", mode];
                args.extend(script.split(' '));
                pgbench(addr, &args)
            })
            .await
            .unwrap();
            assert!(ok, "{mode} {script}: {out}");
            assert!(
                out.contains("number of failed transactions: 0 (0.000%)"),
                "{mode} {script}: {out}"
            );
            let processed: u64 = out
                .lines()
                .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
                .and_then(|n| n.split('/').next()?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{mode} {script}: {out}"));
            assert!(processed > 0, "{mode} {script}: {out}");
            // Each run starts by truncating pgbench_history; simple-update changes an
            // account and logs the change, so what the accounts gained is what was logged.
            let after = int(&c, balance).await;
            let logged = rows(
                &c,
                "SELECT coalesce(sum(delta), 0), count(*) FROM pgbench_history",
            )
            .await;
            let delta: i64 = logged[0][0].as_deref().unwrap().parse().unwrap();
            let entries: u64 = logged[0][1].as_deref().unwrap().parse().unwrap();
            assert_eq!(after - before, delta, "{mode} {script}");
            if script != "-S" {
                assert_eq!(entries, processed, "{mode} {script}: {out}");
            }
            // The TPC-B invariant: every delta went to one account, teller and branch.
            let sums = rows(
                &c,
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts), \
                        (SELECT sum(tbalance) FROM pgbench_tellers), \
                        (SELECT sum(bbalance) FROM pgbench_branches), \
                        (SELECT coalesce(sum(delta), 0) FROM pgbench_history)",
            )
            .await;
            if script == "-b tpcb-like" {
                let total = |i: usize| sums[0][i].as_deref().unwrap().parse::<i64>().unwrap();
                let (a, t, b) = (total(0) - before, total(1), total(2));
                assert_eq!(a, delta, "{mode} {script}: accounts {sums:?}");
                // Tellers and branches start at 0 and only tpcb-like changes them.
                tpcb_total += delta;
                assert_eq!(t, tpcb_total, "{mode} {script}: tellers {sums:?}");
                assert_eq!(b, tpcb_total, "{mode} {script}: branches {sums:?}");
            }
        }
    }
}
