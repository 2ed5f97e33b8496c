//! Shared by the `ai_*` tests: the fixture case of the evaluation set (the pipeline's
//! output of the real evidence files in `runtime/testdata/evidence/`) in a test database,
//! a second case that must never leak, principals, and a chat service over the local
//! provider.

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

/// The real evidence files (`runtime/testdata/evidence/`) whose pipeline output is the
/// evaluation's timeline: Windows Security and Sysmon EVTX, an auth.log, RFC 5424 syslog
/// and a CloudTrail file.
pub const EVIDENCE: [&str; 6] = [
    "security.evtx",
    "new-user-security.evtx",
    "sysmon.evtx",
    "auth.log",
    "syslog5424.log",
    "cloudtrail.json",
];

/// When the auth.log was collected (its RFC 3164 lines have no year; it spans New Year
/// 2025/2026).
pub const AUTH_LOG_COLLECTED: &str = "2026-01-02T00:00:00Z";

/// Runs the pipeline's own steps on every file of [`EVIDENCE`] into `case`: the events
/// are exactly what an investigator would have after uploading those files.
async fn load_events(db: &PgPool, case: Uuid) {
    for name in EVIDENCE {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/evidence")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        load_evidence(db, case, name, &bytes).await;
    }
}

/// Uploads one evidence file into `case` through the pipeline's steps — split, parse to
/// gzip JSON lines, upload with `COPY` — collected at [`AUTH_LOG_COLLECTED`].
pub async fn load_evidence(db: &PgPool, case: Uuid, name: &str, bytes: &[u8]) {
    use chrono_runtime::pipeline::upload::{Target, upload_part};
    use chrono_runtime::pipeline::{ParseOptions, SplitOptions, parse_to_writer, split};
    use std::io::Cursor;
    let evidence = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state) \
         VALUES ($1, $2, $3, $4, 'fixture', 'processing')",
    )
    .bind(evidence)
    .bind(case)
    .bind(name)
    .bind(format!("cases/{case}/evidence/{evidence}/{name}"))
    .execute(db)
    .await
    .unwrap();
    let mut opts = SplitOptions::new(name);
    opts.evidence_id = Some(evidence);
    opts.reference_time = Some(AUTH_LOG_COLLECTED.parse().unwrap());
    let manifest = split(Cursor::new(bytes), &opts).unwrap();
    let parts: Vec<String> = manifest.parts.iter().map(|p| p.id.clone()).collect();
    for part in &manifest.parts {
        let mut gz = Vec::new();
        let summary =
            parse_to_writer(Cursor::new(bytes), part, &ParseOptions::default(), &mut gz).unwrap();
        let target = Target {
            case_id: case,
            evidence_id: evidence,
        };
        upload_part(db, target, &summary, &parts, Cursor::new(gz))
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

/// The events of `case` a filter matches: how many, and the ids of the first 1000 by time
/// (the filter's own sort and limit ignored, so two filters match the same rows exactly
/// when both agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Every matching event.
    pub count: i64,
    /// Ids of the oldest 1000 of them.
    pub first: BTreeSet<i64>,
}

/// What `doc` matches in `case`.
pub async fn rows(db: &PgPool, case: Uuid, doc: &FilterDocument, ctx: &ResolveCtx) -> Matched {
    use chrono_runtime::filter::{Sort, compile_count};
    use sqlx::Row;
    let mut doc = doc.clone();
    doc.limit = chrono_runtime::filter::MAX_LIMIT;
    doc.sort = Sort::TsAsc;
    let q = compile(&doc, case, ctx).unwrap();
    let first = sqlx::query_with(&q.sql, q.arguments().unwrap())
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<i64, _>("id"))
        .collect();
    let q = compile_count(&doc, case, ctx).unwrap();
    let count = sqlx::query_scalar_with(&q.sql, q.arguments().unwrap())
        .fetch_one(db)
        .await
        .unwrap();
    Matched { count, first }
}
