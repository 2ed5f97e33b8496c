//! Shared by the `ai_*` tests: the fixture case of the evaluation set
//! (`runtime/testdata/ai/events.json`) in a test database, a second case that must never
//! leak, principals, and a chat service over the local provider.

#![allow(dead_code)]

pub mod moto;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_runtime::ai::ChatService;
use chrono_runtime::ai::catalog::PgCatalog;
use chrono_runtime::ai::local::{LocalGuard, LocalTranslator};
use chrono_runtime::ai::provider::{FilterModel, GuardModel};
use chrono_runtime::ai::store::{ChatStore, MemoryStore};
use chrono_runtime::auth::{CaseGrant, Principal, Role};
use chrono_runtime::filter::{FilterDocument, ResolveCtx, compile};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// The test data directory.
pub fn testdata(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ai")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The evaluation set's now and zone.
pub fn eval_ctx() -> ResolveCtx {
    let eval: Value = serde_json::from_str(&testdata("eval.json")).unwrap();
    ResolveCtx {
        now: eval["now"].as_str().unwrap().parse().unwrap(),
        tz: eval["tz"].as_str().unwrap().parse().unwrap(),
    }
}

pub async fn pool(opts: PgConnectOptions) -> PgPool {
    let opts =
        chrono_runtime::db::with_timeouts(opts, chrono_runtime::db::DEFAULT_STATEMENT_TIMEOUT);
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap()
}

/// The two cases of the fixture.
#[derive(Debug, Clone, Copy)]
pub struct Cases {
    /// The evaluation case (created by `case-owner`).
    pub case: Uuid,
    /// Another case holding copies of the same events (created by `other-owner`).
    pub other: Uuid,
}

async fn insert_case(db: &PgPool, name: &str, owner: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(owner)
        .execute(db)
        .await
        .unwrap();
    id
}

async fn load_events(db: &PgPool, case: Uuid) {
    let evidence = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state) \
         VALUES ($1, $2, 'fixture.jsonl', $3, 'fixture', 'done')",
    )
    .bind(evidence)
    .bind(case)
    .bind(format!("cases/{case}/evidence/{evidence}/fixture.jsonl"))
    .execute(db)
    .await
    .unwrap();
    let fixture: Value = serde_json::from_str(&testdata("events.json")).unwrap();
    for (n, e) in fixture["events"].as_array().unwrap().iter().enumerate() {
        let device: Option<Uuid> = match e["device"].as_str() {
            Some(name) => Some(
                sqlx::query_scalar(
                    "INSERT INTO devices (id, case_id, name) VALUES ($1, $2, $3) \
                     ON CONFLICT (case_id, name) DO UPDATE SET name = EXCLUDED.name \
                     RETURNING id",
                )
                .bind(Uuid::now_v7())
                .bind(case)
                .bind(name)
                .fetch_one(db)
                .await
                .unwrap(),
            ),
            None => None,
        };
        let identity: Option<Uuid> = match e["identity"].as_str() {
            Some(value) => Some(
                sqlx::query_scalar(
                    "INSERT INTO identities (id, case_id, kind, value) VALUES ($1, $2, 'user', $3) \
                     ON CONFLICT (case_id, kind, value) DO UPDATE SET value = EXCLUDED.value \
                     RETURNING id",
                )
                .bind(Uuid::now_v7())
                .bind(case)
                .bind(value)
                .fetch_one(db)
                .await
                .unwrap(),
            ),
            None => None,
        };
        let ts: DateTime<Utc> = e["ts"].as_str().unwrap().parse().unwrap();
        let source = e["source"].as_str().unwrap();
        let data_type = match source {
            "EVT" => "windows:evtx:record",
            "SYSLOG" => "syslog:line",
            _ => "aws:cloudtrail:event",
        };
        let tags: Vec<String> = e["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, \
             parser, message, device_id, identity_id, event_code, action, outcome, src_ip, \
             dst_ip, attributes, tags, record_ref, dedup_key) \
             VALUES ($1, $2, $3, 'Event Recorded', $4, $5, 'fixture', $6, $7, $8, $9, $10, \
             $11, $12::inet, $13::inet, $14, $15, $16, $16)",
        )
        .bind(case)
        .bind(evidence)
        .bind(ts)
        .bind(data_type)
        .bind(source)
        .bind(e["message"].as_str())
        .bind(device)
        .bind(identity)
        .bind(e["event_code"].as_str())
        .bind(e["action"].as_str())
        .bind(e["outcome"].as_str())
        .bind(e["src_ip"].as_str())
        .bind(e["dst_ip"].as_str())
        .bind(&e["attributes"])
        .bind(tags)
        .bind(format!("e{n:02}"))
        .execute(db)
        .await
        .unwrap();
    }
}

/// Seeds both cases with the fixture events.
pub async fn seed(db: &PgPool) -> Cases {
    let case = insert_case(db, "AI evaluation", "case-owner").await;
    let other = insert_case(db, "Someone else's case", "other-owner").await;
    load_events(db, case).await;
    load_events(db, other).await;
    Cases { case, other }
}

/// An analyst granted `cases`.
pub fn analyst(sub: &str, cases: &[Uuid]) -> Principal {
    Principal {
        sub: sub.into(),
        roles: vec![Role::Analyst],
        cases: CaseGrant::Some(cases.to_vec()),
    }
}

/// The local provider's chat service over `db`, an in-process store, and `now`.
pub fn local_service(db: PgPool, now: DateTime<Utc>) -> ChatService {
    service_with(
        db,
        Arc::new(LocalGuard),
        Arc::new(LocalTranslator),
        Arc::new(MemoryStore::default()),
        now,
    )
}

/// A chat service over these parts, with the clock pinned at `now`.
pub fn service_with(
    db: PgPool,
    guard: Arc<dyn GuardModel>,
    main: Arc<dyn FilterModel>,
    store: Arc<dyn ChatStore>,
    now: DateTime<Utc>,
) -> ChatService {
    let catalog = PgCatalog::new(db, Some("chrono_ro".into())).unwrap();
    ChatService::new(guard, main, store, catalog).with_clock(Arc::new(move || now))
}

/// Ids of the events of `case` matching `doc` (at most 1000).
pub async fn rows(
    db: &PgPool,
    case: Uuid,
    doc: &FilterDocument,
    ctx: &ResolveCtx,
) -> BTreeSet<i64> {
    use sqlx::Row;
    let mut doc = doc.clone();
    doc.limit = 1000;
    let q = compile(&doc, case, ctx).unwrap();
    sqlx::query_with(&q.sql, q.arguments().unwrap())
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64, _>("id"))
        .collect()
}
