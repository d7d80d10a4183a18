//! Foreign keys between concurrent transactions (the single-session cases are in
//! `tests/psql/foreign_keys.sql`): a child insert and a delete of its parent cannot both
//! commit, whichever comes first; child inserts of one parent do not block each other; and
//! a statement prepared before a constraint existed obeys it.

use std::time::Duration;

use duet_tests::ClusterBuilder;

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

async fn schema(c: &tokio_postgres::Client) {
    c.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY, name text);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
         INSERT INTO parent VALUES (1, 'one'), (2, 'two');",
    )
    .await
    .unwrap();
}

/// A parent deleted by an open transaction: a child insert waits for it, then goes
/// through when the delete rolls back, and fails once a delete commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_insert_waits_for_a_parent_delete() {
    let cluster = ClusterBuilder::new("fk-wait-delete").build().await.unwrap();
    let a = cluster.client().await.unwrap();
    schema(&a).await;
    for (end, child_id, parent_id) in [("ROLLBACK", 10, 1), ("COMMIT", 11, 2)] {
        a.batch_execute(&format!("BEGIN; DELETE FROM parent WHERE id = {parent_id}"))
            .await
            .unwrap();
        let b = cluster.client().await.unwrap();
        let insert = tokio::spawn(async move {
            b.execute(
                "INSERT INTO child VALUES ($1, $2)",
                &[&child_id, &parent_id],
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!insert.is_finished(), "the child insert did not wait");
        a.batch_execute(end).await.unwrap();
        let r = insert.await.unwrap();
        if end == "ROLLBACK" {
            assert_eq!(r.unwrap(), 1);
        } else {
            assert_eq!(code(&r.unwrap_err()), "23503");
        }
    }
    // The child of parent 1 holds it now.
    let e = a
        .execute("DELETE FROM parent WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23503");
    assert_eq!(crate::int(&a, "SELECT count(*) FROM parent").await, 1);
    assert_eq!(crate::int(&a, "SELECT count(*) FROM child").await, 1);
}

/// A child inserted by an open transaction holds its parent: a delete of the parent waits
/// and then fails; inserts of other children of the same parent do not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_child_insert_holds_its_parent() {
    let cluster = ClusterBuilder::new("fk-hold-parent").build().await.unwrap();
    let a = cluster.client().await.unwrap();
    let b = cluster.client().await.unwrap();
    let d = cluster.client().await.unwrap();
    schema(&a).await;
    a.batch_execute("BEGIN; INSERT INTO child VALUES (20, 2)")
        .await
        .unwrap();
    // A second child of parent 2 shares its lock.
    tokio::time::timeout(
        Duration::from_secs(5),
        b.batch_execute("BEGIN; INSERT INTO child VALUES (21, 2); COMMIT"),
    )
    .await
    .expect("a second child insert waited for the first")
    .unwrap();
    let delete =
        tokio::spawn(async move { d.execute("DELETE FROM parent WHERE id = 2", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!delete.is_finished(), "the parent delete did not wait");
    a.batch_execute("COMMIT").await.unwrap();
    let e = delete.await.unwrap().unwrap_err();
    assert_eq!(code(&e), "23503");
    assert_eq!(
        crate::int(&a, "SELECT count(*) FROM child WHERE parent_id = 2").await,
        2
    );
}

/// A DELETE prepared (and run, so its fast plan is made) before the table became
/// referenced obeys the constraint added later; so does a prepared INSERT into the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_before_the_constraint_obey_it() {
    let cluster = ClusterBuilder::new("fk-prepared").build().await.unwrap();
    let c = cluster.client().await.unwrap();
    c.batch_execute(
        "CREATE TABLE parent (id int PRIMARY KEY);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int);
         INSERT INTO parent VALUES (1), (2), (3);",
    )
    .await
    .unwrap();
    let delete = c.prepare("DELETE FROM parent WHERE id = $1").await.unwrap();
    let insert = c
        .prepare("INSERT INTO child (id, parent_id) VALUES ($1, $2)")
        .await
        .unwrap();
    for _ in 0..6 {
        assert_eq!(c.execute(&delete, &[&4i32]).await.unwrap(), 0);
        c.execute(&insert, &[&100i32, &1i32]).await.unwrap();
        c.batch_execute("DELETE FROM child").await.unwrap();
    }
    c.batch_execute("ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent")
        .await
        .unwrap();
    c.execute(&insert, &[&1i32, &1i32]).await.unwrap();
    let e = c.execute(&insert, &[&2i32, &9i32]).await.unwrap_err();
    assert_eq!(code(&e), "23503");
    let e = c.execute(&delete, &[&1i32]).await.unwrap_err();
    assert_eq!(code(&e), "23503");
    assert_eq!(c.execute(&delete, &[&2i32]).await.unwrap(), 1);
}
