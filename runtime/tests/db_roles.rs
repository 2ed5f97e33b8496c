//! The database as Aurora runs it: the tests connect as a role like the Aurora master user
//! (CREATEROLE, CREATEDB, not a superuser; `tests/with-postgres.sh`) on the major version
//! Aurora runs by default, and the AI path's `SET LOCAL ROLE chrono_ro` works for that
//! role after the migrations (issue 13, defect 2).

mod common;

use chrono::Utc;
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::filter::{FilterDocument, ResolveCtx};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrations = false)]
async fn tests_run_as_a_non_superuser_like_the_aurora_master(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    // the login itself (no migrations: the runtime's role does not exist yet here)
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    let (superuser, createrole, createdb): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = session_user",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        !superuser,
        "DATABASE_URL connects as a superuser; Aurora's master user is not one \
         (run the tests under tests/with-postgres.sh)"
    );
    assert!(
        createrole && createdb,
        "the Aurora master user has CREATEROLE and CREATEDB"
    );

    // The same major version as the Aurora default engine, so version-dependent role
    // semantics (PostgreSQL 16's createrole_self_grant) are the ones tested.
    let aurora = chrono_stacks::config::AuroraConfig::default().engine_version;
    let aurora_major: u32 = aurora.split('.').next().unwrap().parse().unwrap();
    let server: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        server as u32 / 10000,
        aurora_major,
        "the test server is PostgreSQL {server}, Aurora's default engine is {aurora}: \
         update tests/postgres/package.json (make postgres-bin)"
    );
}

/// Before the fix every AI request failed with "permission denied to set role
/// \"chrono_ro\"": the migrating (master) user created the role but could not SET it.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_ai_path_sets_its_read_only_role_as_the_migrating_user(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    let catalog = PgCatalog::new(db.clone(), Some("chrono_ro".into())).unwrap();

    assert_eq!(
        catalog.case_owner(fx.case).await.unwrap().as_deref(),
        Some("case-owner")
    );
    let mut doc =
        FilterDocument::parse(br#"{"where": {"field": "identity", "op": "eq", "value": "bob"}}"#)
            .unwrap();
    let resolved = catalog.resolve(fx.case, &mut doc).await.unwrap();
    assert_eq!(resolved[0].ids, vec![fx.bob]);
    let n = catalog
        .count(fx.case, &doc, &ResolveCtx::utc(Utc::now()))
        .await
        .unwrap();
    assert!(n > 0, "bob's events are counted under chrono_ro");
    // (that chrono_ro cannot write: api_routes.rs, ai_security.rs)
}

/// The SQLSTATE of a refused statement.
fn refused(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.code().unwrap_or_default().into_owned(),
        other => panic!("not refused: {other:?}"),
    }
}

/// Chain of custody: the audit log is append-only for every application role. The
/// runtime's sessions act as `chrono_rw` (granted SELECT and INSERT only), the AI path as
/// `chrono_ro` (nothing but `chrono_audit`); even the login that owns the table (the
/// Aurora master user) is refused by the trigger.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_audit_log_refuses_update_and_delete_for_every_role(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let runtime = common::pool(opts.clone()).await;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&runtime)
        .await
        .unwrap();
    assert_eq!(role, chrono_runtime::db::RUNTIME_ROLE);
    let id: i64 = sqlx::query_scalar("SELECT chrono_audit('u-1', NULL, 'case_created', '{}')")
        .fetch_one(&runtime)
        .await
        .unwrap();
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        // 42501: insufficient_privilege (no grant; the trigger raises the same code)
        assert_eq!(
            refused(sqlx::query(statement).execute(&runtime).await),
            "42501",
            "chrono_rw: {statement}"
        );
        let mut tx = runtime.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE chrono_ro")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(
            refused(sqlx::query(statement).execute(&mut *tx).await),
            "42501",
            "chrono_ro: {statement}"
        );
        tx.rollback().await.unwrap();
        assert_eq!(
            refused(sqlx::query(statement).execute(&owner).await),
            "42501",
            "the owner: {statement}"
        );
    }
    for (role, privilege) in [
        ("chrono_rw", "UPDATE"),
        ("chrono_rw", "DELETE"),
        ("chrono_rw", "TRUNCATE"),
        ("chrono_ro", "UPDATE"),
        ("chrono_ro", "DELETE"),
        ("chrono_ro", "INSERT"),
    ] {
        let granted: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'audit_log', $2)")
            .bind(role)
            .bind(privilege)
            .fetch_one(&owner)
            .await
            .unwrap();
        assert!(!granted, "{role} has {privilege} on audit_log");
    }
    let (actor, n): (String, i64) = sqlx::query_as(
        "SELECT (SELECT actor FROM audit_log WHERE id = $1), count(*) FROM audit_log",
    )
    .bind(id)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!((actor.as_str(), n), ("u-1", 1));
}
