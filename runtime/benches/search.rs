//! Search benchmark (`make bench`): one case with 1,000,000 generated events, three typical
//! filters, p50/p99 latency through the router (`oneshot`: JWT check, case access, filter
//! compile, query, JSON) against the bare compiled SQL on the same database.
//!
//! Needs `DATABASE_URL` (the Makefile runs it under `tests/with-postgres.sh`); it creates
//! and finally drops a database `chrono_bench` there. Targets (issue 3): router p99 ≤ 20 ms
//! and ≤ 1.5× the bare SQL p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use chrono::{DateTime, TimeDelta, Utc};
use chrono_runtime::api::{AppState, router};
use chrono_runtime::auth::{
    Authenticator, ClaimNames, DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM, JwtVerifier,
};
use chrono_runtime::filter::{FilterDocument, ResolveCtx, compile};
use chrono_runtime::launcher::LocalLauncher;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tower::ServiceExt;
use uuid::Uuid;

const EVENTS: i64 = 1_000_000;
const BATCH: i64 = 100_000;
const WARMUP: usize = 30;
const ITERATIONS: usize = 400;
const KEY_PEM: &[u8] = include_bytes!("../tests/fixtures/test-jwt-key.pem");
const JWKS: &str = include_str!("../tests/fixtures/test-jwks.json");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), BoxError> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL, or run `make bench` (private PostgreSQL cluster)")?;
    let admin_opts: PgConnectOptions = url.parse()?;
    let mut admin = admin_opts.connect().await?;
    sqlx::query("DROP DATABASE IF EXISTS chrono_bench")
        .execute(&mut admin)
        .await?;
    sqlx::query("CREATE DATABASE chrono_bench")
        .execute(&mut admin)
        .await?;
    let opts = chrono_runtime::db::with_timeouts(
        admin_opts.clone().database("chrono_bench"),
        Duration::from_secs(600),
    );
    let setup = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts.clone())
        .await?;
    chrono_runtime::db::MIGRATOR.run(&setup).await?;
    let t0: DateTime<Utc> = "2024-01-01T00:00:00Z".parse()?;
    let started = Instant::now();
    let case = generate(&setup, t0).await?;
    eprintln!("generated {EVENTS} events in {:.1?}", started.elapsed());
    setup.close().await;

    // the API's own settings from here on: 5 s statement timeout
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(chrono_runtime::db::with_timeouts(
            admin_opts.clone().database("chrono_bench"),
            chrono_runtime::db::DEFAULT_STATEMENT_TIMEOUT,
        ))
        .await?;
    let verifier = JwtVerifier::from_jwks(
        JWKS,
        "https://issuer.bench/",
        "chrono-api",
        ClaimNames::default(),
    )?;
    let app = router(AppState::new(
        db.clone(),
        Authenticator::Jwt(Box::new(verifier)),
        None,
        Arc::new(LocalLauncher::unavailable()),
    ));
    let token = token(case)?;

    let day = t0 + TimeDelta::days(17);
    let filters: [(&str, Value); 3] = [
        (
            "time range + identity",
            json!({"time": {"from": day.to_rfc3339(), "to": (day + TimeDelta::days(1)).to_rfc3339()},
                   "where": {"field": "identity", "op": "eq", "value": "user042"}}),
        ),
        (
            "action + outcome",
            json!({"where": {"all": [{"field": "action", "op": "eq", "value": "logon"},
                                     {"field": "outcome", "op": "eq", "value": "failure"}]},
                   "sort": "ts_desc"}),
        ),
        (
            "message contains",
            json!({"where": {"field": "message", "op": "contains", "value": "mimikatz"}}),
        ),
    ];

    println!("search on {EVENTS} events, {ITERATIONS} iterations each (ms)");
    println!(
        "{:<24} {:>6} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "filter", "rows", "api p50", "api p99", "sql p50", "sql p99", "p99 ratio"
    );
    let uri = format!("/api/v1/cases/{case}/events/search");
    for (name, doc) in &filters {
        let parsed = FilterDocument::parse(doc.to_string().as_bytes())?;
        let q = compile(&parsed, case, &ResolveCtx::utc(Utc::now()))?;
        let mut api = Vec::with_capacity(ITERATIONS);
        let mut sql = Vec::with_capacity(ITERATIONS);
        let (mut api_rows, mut sql_rows) = (0, 0);
        for i in 0..WARMUP + ITERATIONS {
            let req = http::Request::post(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(doc.to_string()))?;
            let start = Instant::now();
            let resp = app.clone().oneshot(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            let api_time = start.elapsed();
            if status != 200 {
                return Err(format!("{name}: {status} {}", String::from_utf8_lossy(&bytes)).into());
            }
            let body: Value = serde_json::from_slice(&bytes)?;
            api_rows = body["events"].as_array().map(Vec::len).unwrap_or(0);

            let start = Instant::now();
            let rows = sqlx::query_with(&q.sql, q.arguments()?)
                .fetch_all(&db)
                .await?;
            let sql_time = start.elapsed();
            sql_rows = rows.len().min(q.page_size as usize);
            if i >= WARMUP {
                api.push(api_time);
                sql.push(sql_time);
            }
        }
        if api_rows != sql_rows || api_rows == 0 {
            return Err(format!("{name}: router returned {api_rows} rows, SQL {sql_rows}").into());
        }
        let (a50, a99) = (percentile(&mut api, 50.0), percentile(&mut api, 99.0));
        let (s50, s99) = (percentile(&mut sql, 50.0), percentile(&mut sql, 99.0));
        println!(
            "{name:<24} {api_rows:>6} {a50:>10.2} {a99:>10.2} {s50:>10.2} {s99:>10.2} {:>11.2}x",
            a99 / s99
        );
    }
    db.close().await;
    sqlx::query("DROP DATABASE IF EXISTS chrono_bench WITH (FORCE)")
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// Milliseconds at percentile `p` (nearest rank).
fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
}

fn token(case: Uuid) -> Result<String, BoxError> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = json!({
        "sub": "bench-analyst", "iss": "https://issuer.bench/", "aud": "chrono-api",
        "exp": Utc::now().timestamp() + 3600,
        DEFAULT_ROLES_CLAIM: ["analyst"], DEFAULT_CASES_CLAIM: [case.to_string()],
    });
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM)?,
    )?)
}

/// The benchmark case: 50 devices, 500 identities, 1,000,000 events over 30 days, with a
/// realistic mix of actions (1 in 10 a failure) and a rare word ("mimikatz", 1 in 1000) in
/// messages; plus a small second case so scoping is not free. Inserted server-side in
/// batches, then analyzed.
async fn generate(db: &PgPool, t0: DateTime<Utc>) -> Result<Uuid, BoxError> {
    let case = Uuid::now_v7();
    let other = Uuid::now_v7();
    for (id, name) in [(case, "Bench"), (other, "Other")] {
        sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, 'bench')")
            .bind(id)
            .bind(name)
            .execute(db)
            .await?;
        sqlx::query(
            "INSERT INTO evidence (id, case_id, file_name, source_key, created_by, state) \
             VALUES ($1, $2, 'bench.evtx', $1::text, 'bench', 'done')",
        )
        .bind(id)
        .bind(id)
        .execute(db)
        .await?;
        sqlx::query(
            "INSERT INTO devices (id, case_id, name) \
             SELECT gen_random_uuid(), $1, 'host' || lpad(g::text, 3, '0') FROM generate_series(0, 49) g",
        )
        .bind(id).execute(db).await?;
        sqlx::query(
            "INSERT INTO identities (id, case_id, kind, value) \
             SELECT gen_random_uuid(), $1, 'windows_account', 'user' || lpad(g::text, 3, '0') \
             FROM generate_series(0, 499) g",
        )
        .bind(id)
        .execute(db)
        .await?;
    }
    let insert = "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, \
        parser, message, device_id, identity_id, event_code, action, outcome, src_ip, attributes, tags, \
        record_ref, dedup_key) \
        SELECT $1, $1, $2::timestamptz + g * interval '2592 milliseconds', 'Event Recorded', \
          'windows:evtx:record', 'EVT', 'winevtx', \
          CASE WHEN g % 1000 = 7 THEN 'Process created: C:\\Temp\\mimikatz.exe by user' || (g % 500) \
               ELSE 'An account event ' || (g % 9973) || ' for user' || (g % 500) || ' on host' || (g % 50) END, \
          d.ids[1 + g % 50], i.ids[1 + (g * 7) % 500], \
          (ARRAY['4624','4625','4634','4672','4688','4720','7045'])[1 + g % 7], \
          (ARRAY['logon','logon','logoff','special_privileges','process_start','account_created','service_installed'])[1 + g % 7], \
          CASE WHEN g % 10 = 1 THEN 'failure' ELSE 'success' END, \
          ('10.' || (g % 256) || '.' || ((g / 256) % 256) || '.1')::inet, \
          jsonb_build_object('LogonType', (g % 11)::text, 'seq', g), \
          CASE WHEN g % 997 = 0 THEN ARRAY['suspicious'] ELSE '{}'::text[] END, \
          'rec' || g, 'k' || g \
        FROM generate_series($3::bigint, $4::bigint) g, \
          (SELECT array_agg(id ORDER BY name) ids FROM devices WHERE case_id = $1) d, \
          (SELECT array_agg(id ORDER BY value) ids FROM identities WHERE case_id = $1) i";
    let mut start = 0;
    while start < EVENTS {
        let end = (start + BATCH).min(EVENTS) - 1;
        sqlx::query(insert)
            .bind(case)
            .bind(t0)
            .bind(start)
            .bind(end)
            .execute(db)
            .await?;
        start = end + 1;
    }
    sqlx::query(insert)
        .bind(other)
        .bind(t0)
        .bind(0_i64)
        .bind(9_999_i64)
        .execute(db)
        .await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(case)
}
