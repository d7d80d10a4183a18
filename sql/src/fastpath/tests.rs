//! Tests of the module above.
use super::*;
use duet_common::{ColumnDef, TableDef};
use duet_rowstore::engine::memory::MemoryEngine;

fn store() -> duet_rowstore::StoreRef {
    let store = Store::open(Arc::new(MemoryEngine::new())).unwrap();
    let col = |name: &str, ty: SqlType, nullable: bool| ColumnDef {
        name: name.into(),
        ty,
        nullable,
        default_expr: None,
        missing: Datum::Null,
    };
    let def = TableDef {
        format: 1,
        id: 0,
        name: "acc".into(),
        storage_id: 0,
        columns: vec![
            col("aid", SqlType::Int32, false),
            col("bal", SqlType::Int32, true),
            col("name", SqlType::Varchar(Some(4)), true),
        ],
        primary_key: vec![0],
        pk_name: "acc_pkey".into(),
        indexes: vec![],
        columnar: true,
        sequence: None,
        checks: vec![],
        foreign_keys: vec![],
        view: None,
    };
    let cmd = duet_common::command::Command {
        writes: vec![(
            duet_common::codec::key::catalog_key(def.id).into_bytes(),
            Some(def.to_bytes().unwrap()),
        )],
        ..Default::default()
    };
    store.apply_command(1, &cmd.view()).unwrap();
    store
}

fn parse(sql: &str) -> Statement {
    crate::connection::parse_sql(sql).unwrap().remove(0)
}

fn plan(store: &Store, sql: &str) -> Option<FastPlan> {
    FastPlan::recognize(&parse(sql), store)
}

#[test]
fn recognises_only_whole_key_equalities() {
    let s = store();
    for sql in [
        "SELECT bal FROM acc WHERE aid = 1",
        "SELECT a.bal AS b, name FROM public.acc a WHERE (a.aid = $1)",
        "SELECT * FROM acc WHERE 7 = aid",
        "UPDATE acc SET bal = bal + $1 WHERE aid = $2",
        "UPDATE acc SET bal = -5, name = 'x' WHERE aid = 3",
        "DELETE FROM acc WHERE aid = $1",
        "INSERT INTO acc (aid, bal) VALUES ($1, $2), (3, NULL)",
    ] {
        assert!(plan(&s, sql).is_some(), "{sql}");
    }
    for sql in [
        "SELECT bal FROM acc WHERE aid > 1",
        "SELECT bal FROM acc WHERE aid = 1 AND bal = 2",
        "SELECT bal FROM acc WHERE aid = 1 OR aid = 2",
        "SELECT bal + 1 FROM acc WHERE aid = 1",
        "SELECT count(*) FROM acc WHERE aid = 1",
        "SELECT bal FROM acc WHERE aid = 1 ORDER BY bal",
        "SELECT bal FROM acc WHERE aid = 1 FOR UPDATE",
        "SELECT bal, bal FROM acc WHERE aid = 1",
        "SELECT bal FROM acc WHERE aid = 1.5",
        "SELECT bal FROM acc WHERE aid = 99999999999",
        "SELECT bal FROM acc WHERE aid = '1'",
        "SELECT bal FROM acc WHERE aid = 1 AND aid = 2",
        "SELECT bal FROM acc, acc b WHERE acc.aid = 1",
        "SELECT bal FROM nosuch WHERE aid = 1",
        "UPDATE acc SET aid = 2 WHERE aid = 1",
        "UPDATE acc SET bal = bal * 2 WHERE aid = 1",
        "UPDATE acc SET bal = 1 WHERE aid = 1 RETURNING bal",
        "UPDATE acc SET name = 'too long' WHERE aid = 1",
        "UPDATE acc SET name = name + 1 WHERE aid = 1",
        "DELETE FROM acc WHERE aid = 1 RETURNING *",
        "INSERT INTO acc SELECT 1, 2, 'x'",
        "INSERT INTO acc (aid) VALUES (1) ON CONFLICT DO NOTHING",
        "INSERT INTO acc (aid, aid) VALUES (1, 2)",
    ] {
        assert!(plan(&s, sql).is_none(), "{sql}");
    }
}

#[test]
fn the_plain_parse_is_the_compatibility_parse_for_fast_shapes() {
    let s = store();
    for sql in [
        "SELECT bal FROM acc WHERE aid = 1;",
        "SELECT a.bal AS b, name FROM public.acc a WHERE (a.aid = -3)",
        "UPDATE acc SET bal = bal + -5, name = 'it''s' WHERE aid = 7; DELETE FROM acc WHERE aid = 2",
        "INSERT INTO acc (aid, bal) VALUES (1, NULL)",
    ] {
        let plain: Vec<Statement> = parse_if_fast(sql, &s)
            .unwrap_or_else(|| panic!("{sql}"))
            .into_iter()
            .map(|(stmt, _)| stmt)
            .collect();
        assert_eq!(plain, crate::connection::parse_sql(sql).unwrap(), "{sql}");
    }
    for sql in [
        "SELECT bal FROM acc WHERE aid > 1",
        "SELECT bal FROM acc WHERE aid = 1; SELECT 1",
        "SELECT * FROM pg_class WHERE oid = 1",
        "not sql at all",
    ] {
        assert!(parse_if_fast(sql, &s).is_none(), "{sql}");
    }
}

#[test]
fn binding_refuses_what_is_not_exact() {
    let s = store();
    let p = plan(&s, "SELECT bal FROM acc WHERE aid = $1").unwrap();
    let params = |v: ScalarValue| ParamValues::List(vec![v.into()]);
    assert!(p.bind(&params(ScalarValue::Int32(Some(5)))).is_some());
    assert!(p.bind(&params(ScalarValue::Int64(Some(5)))).is_some());
    assert!(p.bind(&params(ScalarValue::Int64(Some(1 << 40)))).is_none());
    assert!(p
        .bind(&params(ScalarValue::Utf8(Some("5".into()))))
        .is_none());
    assert!(p.bind(&ParamValues::List(vec![])).is_none());
    match p.bind(&params(ScalarValue::Int32(None))) {
        Some(Bound::Select { pk: None, .. }) => {}
        other => panic!("a NULL key matches nothing: {other:?}"),
    }
}

#[test]
fn update_arithmetic_follows_postgres_types() {
    let s = store();
    let def = s.table("acc").unwrap();
    let p = plan(&s, "UPDATE acc SET bal = bal + $1 WHERE aid = 1").unwrap();
    let run = |v: ScalarValue, old: i64| -> Option<Row> {
        let Some(Bound::Update { plan, .. }) = p.bind(&ParamValues::List(vec![v.into()])) else {
            panic!("binds");
        };
        plan.apply(&def, &vec![Datum::Int(1), Datum::Int(old), Datum::Null])
    };
    assert_eq!(
        run(ScalarValue::Int32(Some(5)), 10).unwrap()[1],
        Datum::Int(15)
    );
    // int4 + int4 overflows: the general path reports 22003.
    assert!(run(ScalarValue::Int32(Some(i32::MAX)), 1).is_none());
    // int4 + int8 is int8, but the int4 column cannot hold it.
    assert!(run(ScalarValue::Int64(Some(1 << 33)), 1).is_none());
    assert_eq!(run(ScalarValue::Int32(None), 1).unwrap()[1], Datum::Null);
    let q = plan(&s, "UPDATE acc SET bal = bal - -3 WHERE aid = 1").unwrap();
    let Some(Bound::Update { plan, .. }) = q.bind(&ParamValues::List(vec![])) else {
        panic!("binds");
    };
    let new = plan
        .apply(&def, &vec![Datum::Int(1), Datum::Int(4), Datum::Null])
        .unwrap();
    assert_eq!(new[1], Datum::Int(7));
}

#[test]
fn literal_shapes_take_numbers_and_strings_out() {
    let shape = |sql: &str| literal_shape(sql);
    assert_eq!(
        shape("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
        Some((
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;".into(),
            vec![ScalarValue::Int32(Some(12345))]
        ))
    );
    assert_eq!(
        shape("UPDATE t SET b = b + -42, c = 'it''s', d = 1.5e3 WHERE k = 9999999999").unwrap(),
        (
            "UPDATE t SET b = b + $1, c = $2, d = $3 WHERE k = $4".into(),
            vec![
                ScalarValue::Int32(Some(-42)),
                ScalarValue::Utf8(Some("it's".into())),
                ScalarValue::Float64(Some(1500.0)),
                ScalarValue::Int64(Some(9_999_999_999)),
            ]
        )
    );
    // Digits inside names and quoted identifiers stay; a binary minus stays.
    assert_eq!(
        shape(r#"SELECT "c 1", t2.x1 FROM t2 WHERE a-1 = (-2)"#).unwrap(),
        (
            r#"SELECT "c 1", t2.x1 FROM t2 WHERE a-$1 = ($2)"#.into(),
            vec![ScalarValue::Int32(Some(1)), ScalarValue::Int32(Some(-2))]
        )
    );
    assert_eq!(shape("BEGIN").unwrap(), ("BEGIN".into(), vec![]));
    // Not read plainly: comments (hints), placeholders, dollar quotes, prefixed or
    // unterminated strings, numbers run into words, leading dots, huge integers.
    for odd in [
        "SELECT 1 -- c",
        "/*+ engine(column) */ SELECT 1",
        "SELECT $1",
        "SELECT $$x$$",
        "SELECT E'\\n'",
        "SELECT X'ff'",
        "SELECT 'open",
        "SELECT \"open",
        "SELECT 1abc",
        "SELECT .5",
        "SELECT 1e",
        "SELECT 99999999999999999999",
    ] {
        assert!(literal_shape(odd).is_none(), "{odd}");
    }
}
