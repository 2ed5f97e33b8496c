//! Shared test fixtures: signed test tokens, the app over a test database, and a fixture
//! case with a known set of events (record refs `r01`..`r20`) plus a second case (`b01`..)
//! that no search of the first may ever return.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, Utc};
use chrono_runtime::api::{AppState, router};
use chrono_runtime::auth::{
    Authenticator, ClaimNames, DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM, JwtVerifier,
};
use chrono_runtime::launcher::LocalLauncher;
use chrono_runtime::storage::SourcesBucket;
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tower::ServiceExt;
use uuid::Uuid;

pub const ISSUER: &str = "https://issuer.test/";
pub const AUDIENCE: &str = "chrono-api";
const KEY_PEM: &[u8] = include_bytes!("../fixtures/test-jwt-key.pem");
const JWKS: &str = include_str!("../fixtures/test-jwks.json");

/// A pool over the test database with the runtime's statement timeout.
pub async fn pool(opts: PgConnectOptions) -> PgPool {
    let opts =
        chrono_runtime::db::with_timeouts(opts, chrono_runtime::db::DEFAULT_STATEMENT_TIMEOUT);
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap()
}

/// A pool acting as the login itself (the schema's owner, like the Aurora master user),
/// with the runtime's timeouts: for what the runtime's role may not do (DDL, roles).
pub async fn login_pool(opts: PgConnectOptions) -> PgPool {
    let session = chrono_runtime::db::Session {
        role: None,
        ..chrono_runtime::db::Session::runtime(chrono_runtime::db::DEFAULT_STATEMENT_TIMEOUT)
    };
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(session.apply(opts))
        .await
        .unwrap()
}

pub fn verifier() -> JwtVerifier {
    JwtVerifier::from_jwks(JWKS, ISSUER, AUDIENCE, ClaimNames::default()).unwrap()
}

/// A token for `sub` with `roles` and `cases`, valid for an hour.
pub fn token(sub: &str, roles: &[&str], cases: &[String]) -> String {
    token_with(json!({
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": Utc::now().timestamp() + 3600,
        DEFAULT_ROLES_CLAIM: roles,
        DEFAULT_CASES_CLAIM: cases,
    }))
}

/// A token with arbitrary claims, signed with the test key.
pub fn token_with(claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// An SDK configuration with static test credentials in `region`, against `endpoint`
/// when given.
pub fn sdk(region: &'static str, endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut sdk = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new(region))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ),
        )
        .behavior_version(aws_config::BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        sdk = sdk.endpoint_url(endpoint);
    }
    sdk.build()
}

/// The sources bucket, signing with static credentials against a local endpoint.
pub fn sources() -> SourcesBucket {
    let sdk = sdk("us-east-1", Some("http://127.0.0.1:4566"));
    SourcesBucket::new(SourcesBucket::client_from(&sdk), "chrono-test-sources")
}

/// The app with JWT auth, a sources bucket and the local durable queue (processing
/// requests become `pipeline_jobs` rows; no worker runs unless a test starts one).
pub fn app(db: PgPool) -> Router {
    let state = AppState::new(
        db,
        Authenticator::Jwt(Box::new(verifier())),
        Some(sources()),
        Arc::new(LocalLauncher::queue()),
    );
    router(state)
}

/// Sends one request; returns status and JSON body (Null when empty or not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp: Response<Body> = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Ids of the fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub case: Uuid,
    pub other_case: Uuid,
    pub evidence: Uuid,
    pub ws01: Uuid,
    pub web1: Uuid,
    pub bob: Uuid,
    /// event id by record ref
    pub events: Vec<(String, i64)>,
}

impl Fixture {
    pub fn event(&self, r: &str) -> i64 {
        self.events.iter().find(|(k, _)| k == r).unwrap().1
    }
}

struct Ev {
    r: &'static str,
    ts: &'static str,
    source: &'static str,
    data_type: &'static str,
    code: Option<&'static str>,
    action: Option<&'static str>,
    outcome: Option<&'static str>,
    message: Option<&'static str>,
    device: Option<&'static str>,
    identity: Option<&'static str>,
    src: Option<&'static str>,
    dst: Option<&'static str>,
    attrs: Value,
    tags: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
fn ev(
    r: &'static str,
    ts: &'static str,
    source: &'static str,
    code: Option<&'static str>,
    action: Option<&'static str>,
    outcome: Option<&'static str>,
    message: Option<&'static str>,
    device: Option<&'static str>,
    identity: Option<&'static str>,
    src: Option<&'static str>,
    attrs: Value,
    tags: &'static [&'static str],
) -> Ev {
    let data_type = match source {
        "EVT" => "windows:evtx:record",
        "SYSLOG" => "syslog:line",
        "CLOUDTRAIL" => "aws:cloudtrail:event",
        _ => "fs:stat",
    };
    Ev {
        r,
        ts,
        source,
        data_type,
        code,
        action,
        outcome,
        message,
        device,
        identity,
        src,
        dst: None,
        attrs,
        tags,
    }
}

fn events() -> Vec<Ev> {
    let s = Some;
    let mut v = vec![
        ev(
            "r01",
            "2024-03-01T08:00:00Z",
            "EVT",
            s("4624"),
            s("logon"),
            s("success"),
            s("An account was successfully logged on"),
            s("WS01"),
            s("alice"),
            s("10.0.0.5"),
            json!({"LogonType": "3", "TargetUserName": "alice"}),
            &[],
        ),
        ev(
            "r02",
            "2024-03-01T08:05:00Z",
            "EVT",
            s("4625"),
            s("logon"),
            s("failure"),
            s("An account failed to log on"),
            s("WS01"),
            s("bob"),
            s("203.0.113.7"),
            json!({"LogonType": "10", "FailureReason": "%%2313"}),
            &["bruteforce"],
        ),
        ev(
            "r03",
            "2024-03-01T08:05:01Z",
            "EVT",
            s("4625"),
            s("logon"),
            s("failure"),
            s("An account failed to log on"),
            s("WS01"),
            s("bob"),
            s("203.0.113.7"),
            json!({"LogonType": "10"}),
            &["bruteforce"],
        ),
        ev(
            "r04",
            "2024-03-01T08:06:00Z",
            "EVT",
            s("4624"),
            s("logon"),
            s("success"),
            s("An account was successfully logged on"),
            s("WS01"),
            s("bob"),
            s("203.0.113.7"),
            json!({"LogonType": "10"}),
            &["bruteforce", "suspicious"],
        ),
        ev(
            "r05",
            "2024-03-01T08:10:00Z",
            "EVT",
            s("4672"),
            s("special_privileges"),
            s("success"),
            s("Special privileges assigned to new logon"),
            s("WS01"),
            s("bob"),
            None,
            json!({"PrivilegeList": "SeDebugPrivilege"}),
            &[],
        ),
        ev(
            "r06",
            "2024-03-01T08:15:00Z",
            "EVT",
            s("4688"),
            s("process_start"),
            s("success"),
            s("A new process has been created: C:\\Windows\\System32\\cmd.exe"),
            s("WS01"),
            s("bob"),
            None,
            json!({"NewProcessName": "C:\\Windows\\System32\\cmd.exe", "ProcessId": 4242}),
            &["suspicious"],
        ),
        ev(
            "r07",
            "2024-03-01T08:20:00Z",
            "EVT",
            s("4720"),
            s("account_created"),
            s("success"),
            s("A user account was created: backdoor"),
            s("SRV-DC1"),
            s("bob"),
            None,
            json!({"TargetUserName": "backdoor"}),
            &["persistence"],
        ),
        ev(
            "r08",
            "2024-03-01T08:30:00Z",
            "SYSLOG",
            s("sshd"),
            s("logon"),
            s("failure"),
            s("Failed password for invalid user admin from 198.51.100.9 port 22 ssh2"),
            s("web-1"),
            None,
            s("198.51.100.9"),
            json!({"pid": 1234, "port": 22}),
            &[],
        ),
        ev(
            "r09",
            "2024-03-01T08:31:00Z",
            "SYSLOG",
            s("sshd"),
            s("logon"),
            s("success"),
            s("Accepted publickey for root from 10.0.0.5 port 50000 ssh2"),
            s("web-1"),
            s("root"),
            s("10.0.0.5"),
            json!({"pid": 1240, "port": 50000}),
            &[],
        ),
        ev(
            "r10",
            "2024-03-01T08:40:00Z",
            "SYSLOG",
            s("sudo"),
            s("privilege_escalation"),
            s("success"),
            s("root : TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/bash"),
            s("web-1"),
            s("root"),
            None,
            json!({}),
            &[],
        ),
        ev(
            "r11",
            "2024-03-01T09:00:00Z",
            "CLOUDTRAIL",
            s("ConsoleLogin"),
            s("logon"),
            s("success"),
            s("ConsoleLogin by mallory"),
            None,
            s("mallory"),
            s("192.0.2.44"),
            json!({"mfaUsed": "No"}),
            &[],
        ),
        ev(
            "r12",
            "2024-03-01T09:05:00Z",
            "CLOUDTRAIL",
            s("CreateAccessKey"),
            s("access_key_created"),
            s("success"),
            s("CreateAccessKey for mallory"),
            None,
            s("mallory"),
            s("192.0.2.44"),
            json!({}),
            &["persistence"],
        ),
        ev(
            "r13",
            "2024-03-01T09:06:00Z",
            "CLOUDTRAIL",
            s("GetObject"),
            s("object_read"),
            s("failure"),
            s("GetObject s3://secrets/db.txt"),
            None,
            s("mallory"),
            s("192.0.2.44"),
            json!({"errorCode": "AccessDenied", "bytes": 0}),
            &[],
        ),
        ev(
            "r14",
            "2024-03-01T09:07:00Z",
            "CLOUDTRAIL",
            s("GetObject"),
            s("object_read"),
            s("success"),
            s("GetObject s3://public/index.html 100% done_ok"),
            None,
            s("mallory"),
            s("2001:db8::1"),
            json!({"bytes": 5120}),
            &[],
        ),
        ev(
            "r15",
            "2024-03-01T09:10:00Z",
            "CLOUDTRAIL",
            s("DeleteObject"),
            s("object_deleted"),
            s("success"),
            s("DeleteObject s3://secrets/db.txt"),
            None,
            s("mallory"),
            None,
            json!({}),
            &[],
        ),
        ev(
            "r16",
            "2024-03-01T10:00:00Z",
            "EVT",
            s("4634"),
            s("logoff"),
            s("success"),
            s("An account was logged off"),
            s("WS01"),
            s("alice"),
            None,
            json!({}),
            &[],
        ),
        ev(
            "r17",
            "2024-03-01T10:00:00Z",
            "EVT",
            s("4634"),
            s("logoff"),
            s("success"),
            s("An account was logged off"),
            s("WS01"),
            s("bob"),
            None,
            json!({}),
            &[],
        ),
        ev(
            "r18",
            "2024-03-01T11:00:00Z",
            "FILE",
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            json!({}),
            &[],
        ),
        ev(
            "r19",
            "2024-03-02T00:30:00Z",
            "EVT",
            s("7045"),
            s("service_installed"),
            s("unknown"),
            s("A service was installed: evil_svc"),
            s("SRV-DC1"),
            None,
            None,
            json!({"ServiceName": "evil_svc"}),
            &["persistence"],
        ),
        ev(
            "r20",
            "2024-02-29T23:59:59.999999Z",
            "EVT",
            s("4624"),
            s("logon"),
            s("success"),
            s("Logon by O'Brien'; DROP TABLE events; --"),
            s("WS01"),
            s("alice"),
            None,
            json!({"LogonType": "2"}),
            &[],
        ),
    ];
    v[0].dst = Some("10.0.0.10");
    v[1].dst = Some("10.0.0.10");
    v
}

/// Identity values of the fixture by short name.
fn identity_of(short: &str) -> (&'static str, &'static str) {
    match short {
        "alice" => ("windows_account", "CORP\\alice"),
        "bob" => ("windows_account", "CORP\\bob"),
        "root" => ("unix_user", "root"),
        _ => ("aws_principal", "arn:aws:iam::123456789012:user/mallory"),
    }
}

async fn insert_case(db: &PgPool, name: &str, created_by: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(created_by)
        .execute(db)
        .await
        .unwrap();
    id
}

pub async fn insert_evidence(db: &PgPool, case: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state) \
         VALUES ($1, $2, 'Security.evtx', $3, 'fixture', 'done')",
    )
    .bind(id)
    .bind(case)
    .bind(format!("cases/{case}/evidence/{id}/Security.evtx"))
    .execute(db)
    .await
    .unwrap();
    id
}

async fn upsert_device(db: &PgPool, case: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO devices (id, case_id, name) VALUES ($1, $2, $3) \
         ON CONFLICT (case_id, name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(case)
    .bind(name)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn upsert_identity(db: &PgPool, case: Uuid, short: &str) -> Uuid {
    let (kind, value) = identity_of(short);
    sqlx::query_scalar(
        "INSERT INTO identities (id, case_id, kind, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (case_id, kind, value) DO UPDATE SET value = EXCLUDED.value RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(case)
    .bind(kind)
    .bind(value)
    .fetch_one(db)
    .await
    .unwrap()
}

async fn insert_events(
    db: &PgPool,
    case: Uuid,
    evidence: Uuid,
    list: &[Ev],
    prefix: &str,
) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for e in list {
        let device = match e.device {
            Some(d) => Some(upsert_device(db, case, d).await),
            None => None,
        };
        let identity = match e.identity {
            Some(i) => Some(upsert_identity(db, case, i).await),
            None => None,
        };
        let ts: DateTime<Utc> = e.ts.parse().unwrap();
        let r = format!("{prefix}{}", &e.r[1..]);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, \
             message, device_id, identity_id, event_code, action, outcome, src_ip, dst_ip, attributes, \
             tags, record_ref, dedup_key) \
             VALUES ($1, $2, $3, 'Event Recorded', $4, $5, 'fixture', $6, $7, $8, $9, $10, $11, \
             $12::inet, $13::inet, $14, $15, $16, $16) RETURNING id",
        )
        .bind(case)
        .bind(evidence)
        .bind(ts)
        .bind(e.data_type)
        .bind(e.source)
        .bind(e.message)
        .bind(device)
        .bind(identity)
        .bind(e.code)
        .bind(e.action)
        .bind(e.outcome)
        .bind(e.src)
        .bind(e.dst)
        .bind(&e.attrs)
        .bind(e.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        .bind(&r)
        .fetch_one(db)
        .await
        .unwrap();
        out.push((r, id));
    }
    out
}

/// The id of some event of `case`.
pub async fn any_event_of(db: &PgPool, case: Uuid) -> i64 {
    sqlx::query_scalar("SELECT id FROM events WHERE case_id = $1 ORDER BY id LIMIT 1")
        .bind(case)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Seeds the fixture: case "Operation Fixture" (created by `case-owner`) with events
/// r01..r20 and labels (r02 `star` by `u-analyst`, r07 `important` by `u-admin`), and
/// case "Other Case" (created by `other-owner`) with copies of r01..r04 as b01..b04.
pub async fn seed(db: &PgPool) -> Fixture {
    let case = insert_case(db, "Operation Fixture", "case-owner").await;
    let other_case = insert_case(db, "Other Case", "other-owner").await;
    let evidence = insert_evidence(db, case).await;
    let other_evidence = insert_evidence(db, other_case).await;
    let all = events();
    let ids = insert_events(db, case, evidence, &all, "r").await;
    insert_events(db, other_case, other_evidence, &all[..4], "b").await;
    let fx = Fixture {
        case,
        other_case,
        evidence,
        ws01: upsert_device(db, case, "WS01").await,
        web1: upsert_device(db, case, "web-1").await,
        bob: upsert_identity(db, case, "bob").await,
        events: ids,
    };
    for (r, user, label) in [
        ("r02", "u-analyst", "star"),
        ("r07", "u-admin", "important"),
    ] {
        sqlx::query(
            "INSERT INTO event_labels (event_id, case_id, user_sub, label) VALUES ($1, $2, $3, $4)",
        )
        .bind(fx.event(r))
        .bind(case)
        .bind(user)
        .bind(label)
        .execute(db)
        .await
        .unwrap();
    }
    fx
}
