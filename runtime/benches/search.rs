//! Search and histogram benchmark (`make bench`): one case with 1,000,000 generated events
//! (`chrono_runtime::synthetic`), three typical filters, p50/p99 latency through the router
//! (`oneshot`: JWT check, case access, filter compile, query, JSON) against the bare
//! compiled SQL on the same database; then the histogram route's p50/p99 for the whole
//! case (UTC and a half-hour zone), one day, a week in 1000 buckets (a quarter-hour zone)
//! — these sum the stored per-minute/per-hour counts — and two filters, which count
//! events (target, issue 15: p99 ≤ 50 ms).
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
use chrono_runtime::synthetic;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tower::ServiceExt;
use uuid::Uuid;

const EVENTS: i64 = 1_000_000;
const WARMUP: usize = 30;
const ITERATIONS: usize = 400;
const HISTOGRAM_ITERATIONS: usize = 200;
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
            let (api_time, body) = post(&app, &uri, &token, doc, name).await?;
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

    // (name, query string, document)
    let histograms: [(&str, &str, Value); 6] = [
        ("whole case", "", json!({})),
        ("whole case, Kolkata", "?tz=Asia/Kolkata", json!({})),
        (
            "one day",
            "",
            json!({"time": {"from": day.to_rfc3339(), "to": (day + TimeDelta::days(1)).to_rfc3339()}}),
        ),
        (
            "7 days, 1000 buckets",
            "?buckets=1000&tz=Asia/Kathmandu",
            json!({"time": {"from": (day + TimeDelta::seconds(17)).to_rfc3339(),
                            "to": (day + TimeDelta::days(7)).to_rfc3339()}}),
        ),
        ("action + outcome", "", filters[1].1.clone()),
        (
            "identity",
            "",
            json!({"where": {"field": "identity", "op": "eq", "value": "user042"}}),
        ),
    ];
    println!();
    println!(
        "histogram (100 buckets unless said) on {EVENTS} events, {HISTOGRAM_ITERATIONS} iterations each (ms); target p99 <= 50"
    );
    println!(
        "{:<24} {:>9} {:>9} {:>10} {:>10}",
        "filter", "events", "interval", "api p50", "api p99"
    );
    for (name, query, doc) in &histograms {
        let uri = format!("/api/v1/cases/{case}/events/histogram{query}");
        let mut times = Vec::with_capacity(HISTOGRAM_ITERATIONS);
        let mut last = Value::Null;
        for i in 0..WARMUP + HISTOGRAM_ITERATIONS {
            let (elapsed, body) = post(&app, &uri, &token, doc, name).await?;
            if i >= WARMUP {
                times.push(elapsed);
            }
            last = body;
        }
        let total = last["total"].as_i64().unwrap_or(0);
        if total == 0 {
            return Err(format!("{name}: the histogram counted nothing: {last}").into());
        }
        let (p50, p99) = (percentile(&mut times, 50.0), percentile(&mut times, 99.0));
        println!(
            "{name:<24} {total:>9} {:>9} {p50:>10.2} {p99:>10.2}",
            last["interval"].as_str().unwrap_or("?")
        );
    }
    db.close().await;
    sqlx::query("DROP DATABASE IF EXISTS chrono_bench WITH (FORCE)")
        .execute(&mut admin)
        .await?;
    Ok(())
}

/// `POST`s `doc` through the router as the bench analyst; the time to the whole answer and
/// the answer (an error unless 200).
async fn post(
    app: &axum::Router,
    uri: &str,
    token: &str,
    doc: &Value,
    name: &str,
) -> Result<(Duration, Value), BoxError> {
    let req = http::Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(doc.to_string()))?;
    let start = Instant::now();
    let resp = app.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let elapsed = start.elapsed();
    if status != 200 {
        return Err(format!("{name}: {status} {}", String::from_utf8_lossy(&bytes)).into());
    }
    Ok((elapsed, serde_json::from_slice(&bytes)?))
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

/// The benchmark case: the synthetic timeline of [`chrono_runtime::synthetic`] with
/// 1,000,000 events over 30 days, plus a small second case so scoping is not free; then
/// analyzed.
async fn generate(db: &PgPool, t0: DateTime<Utc>) -> Result<Uuid, BoxError> {
    let case = Uuid::now_v7();
    let other = Uuid::now_v7();
    for (id, name, events) in [(case, "Bench", EVENTS), (other, "Other", 10_000)] {
        sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, 'bench')")
            .bind(id)
            .bind(name)
            .execute(db)
            .await?;
        synthetic::load(db, id, synthetic::Spec::over_30_days(events, t0), |_| {}).await?;
    }
    synthetic::analyze(db).await?;
    Ok(case)
}
