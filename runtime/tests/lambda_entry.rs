//! The Lambda entry point, driven with a real API Gateway HTTP API (payload 2.0) event
//! carrying JWT authorizer claims: the claims are the identity, the router answers, and the
//! answer is an API Gateway response.

mod common;

use std::sync::Arc;

use chrono_runtime::api::{AppState, router};
use chrono_runtime::auth::{Authenticator, ClaimNames};
use chrono_runtime::launcher::LocalLauncher;
use chrono_runtime::server::{lambda_entry, lambda_handler};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent, Service};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const EVENT: &str = include_str!("fixtures/apigw-http-v2-search.json");
const CASE: &str = "0193a5e0-0000-7000-8000-000000000001";

/// The router as the Lambda serves it: identity from API Gateway's authorizer claims.
fn gateway_app(db: sqlx::PgPool) -> axum::Router {
    router(AppState::new(
        db,
        Authenticator::ApiGateway(ClaimNames::default()),
        None,
        Arc::new(LocalLauncher::unavailable()),
    ))
}

async fn invoke(app: axum::Router, event: Value) -> Value {
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let mut handler = lambda_handler(app);
    let response = handler
        .call(LambdaEvent::new(request, Context::default()))
        .await
        .unwrap();
    serde_json::to_value(response).unwrap()
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn lambda_entry_serves_an_api_gateway_http_event(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = common::pool(opts).await;
    let fx = common::seed(&db).await;
    // the recorded event names a fixed case id: a case with that id gets a copy of the
    // fixture's events
    let case = Uuid::parse_str(CASE).unwrap();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, 'Lambda Case', 'x')")
        .bind(case)
        .execute(&db)
        .await
        .unwrap();
    let evidence = common::insert_evidence(&db, case).await;
    sqlx::query(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, message, \
         event_code, action, outcome, attributes, tags, record_ref, dedup_key) \
         SELECT $1, $2, ts, timestamp_desc, data_type, source, parser, message, event_code, action, outcome, \
         attributes, tags, record_ref, dedup_key FROM events WHERE case_id = $3",
    )
    .bind(case).bind(evidence).bind(fx.case).execute(&db).await.unwrap();

    let app = gateway_app(db);
    let event: Value = serde_json::from_str(EVENT).unwrap();

    let response = invoke(app.clone(), event.clone()).await;
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let refs: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["provenance"]["record_ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec!["r11", "r09"]);
    assert!(body["next_cursor"].is_string());
    assert!(
        response["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );

    // the bearer header is not what authenticates in Lambda: without authorizer claims → 401
    let mut anonymous = event.clone();
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let response = invoke(app.clone(), anonymous).await;
    assert_eq!(response["statusCode"], 401);

    // claims for another case → 404, as for an unknown case
    let mut other = event.clone();
    other["requestContext"]["authorizer"]["jwt"]["claims"]["https://chronotracer.io/cases"] =
        Value::String(format!("[{}]", fx.other_case));
    let response = invoke(app.clone(), other).await;
    assert_eq!(response["statusCode"], 404);

    // an analyst may not register evidence → 403
    let mut upload = event;
    upload["rawPath"] = Value::String(format!("/api/v1/cases/{CASE}/evidence"));
    upload["requestContext"]["http"]["path"] = upload["rawPath"].clone();
    upload["body"] = Value::String("{\"file_name\":\"a.evtx\"}".into());
    let response = invoke(app, upload).await;
    assert_eq!(response["statusCode"], 403);
}

/// The operator event `chronoctl onboard` sends (`chrono_provisioner::deploy::migrate::
/// MIGRATE_PAYLOAD`; [`onboard_sends_this_event`] checks the two agree).
const MIGRATE_EVENT: &str = r#"{"chrono_command":"migrate"}"#;

#[test]
fn onboard_sends_this_event() {
    // the provisioner is not a dependency of the runtime: read its constant from source
    let source = include_str!("../../provisioner/src/deploy/migrate.rs");
    let line = source
        .lines()
        .find(|l| l.starts_with("pub const MIGRATE_PAYLOAD"))
        .expect("MIGRATE_PAYLOAD in provisioner/src/deploy/migrate.rs");
    assert!(line.contains(MIGRATE_EVENT), "{line}");
}

async fn entry(db: &sqlx::PgPool, event: &str) -> Result<Value, String> {
    let event = LambdaEvent::new(serde_json::from_str(event).unwrap(), Context::default());
    let credentials = chrono_runtime::db::Credentials::fixed(db.connect_options().as_ref().clone());
    lambda_entry(gateway_app(db.clone()), db.clone(), &credentials, event)
        .await
        .map_err(|e| e.to_string())
}

#[sqlx::test(migrations = false)]
async fn the_migrate_command_migrates_an_empty_database_and_is_idempotent(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = common::pool(opts).await;
    let tables = |db: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('cases', 'events', 'evidence')",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(tables(db.clone()).await, 0, "starts empty");

    let out = entry(&db, MIGRATE_EVENT).await.unwrap();
    assert_eq!(out["migrated"], true, "{out}");
    let latest = chrono_runtime::db::MIGRATOR.iter().map(|m| m.version).max();
    assert_eq!(out["latest_version"], serde_json::json!(latest));
    assert_eq!(tables(db.clone()).await, 3);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        applied as usize,
        chrono_runtime::db::MIGRATOR.iter().count()
    );

    // a rerun (onboard resumed) applies nothing twice
    entry(&db, MIGRATE_EVENT).await.unwrap();
    let again: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(again, applied);

    // an unknown command and an event that is neither are function errors, not 500s
    let err = entry(&db, r#"{"chrono_command":"drop"}"#)
        .await
        .unwrap_err();
    assert!(err.contains("unknown chrono_command"), "{err}");
    let err = entry(&db, r#"{"hello":"world"}"#).await.unwrap_err();
    assert!(err.contains("not an API Gateway event"), "{err}");

    // and API Gateway events still reach the router through the same entry point
    let out = entry(&db, EVENT).await.unwrap();
    assert_eq!(out["statusCode"], 404, "unknown case: {out}");
}
