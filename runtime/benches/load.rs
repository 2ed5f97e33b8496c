//! Load benchmark (`make bench`, issue 18): the release `chrono-api serve` on loopback
//! under a bounded, closed-loop load generator, next to the same statements on a bare sqlx
//! pool, at concurrency 1, 8, 32 and 64.
//!
//! * **Data.** A fresh database `chrono_load` (dropped at the end; nothing is reused from
//!   an earlier run): `CHRONO_LOAD_EVENTS` events (default 1,000,000) of
//!   [`chrono_runtime::synthetic`] in one case — 50 devices, 500 identities, 30 days
//!   ending now — and two more cases of a twentieth each, so case scoping is not free;
//!   generated server-side in batches, then `VACUUM (ANALYZE)`.
//! * **API.** The `chrono-api` binary of this build (`serve`, local mode: its own pool
//!   of [`LOCAL_POOL_CONNECTIONS`], JWT verification against the test key set) with a real
//!   RS256 token for an analyst of the case. Every search is what the web app sends
//!   (`app/src/views/CaseView.tsx`: 500 events a page, `?tz=` the browser's zone), a mix
//!   of filters and their next pages (`?cursor=` from the API's own answers); first pages
//!   are audited, as always.
//! * **Bare SQL.** For each request, the statement the API runs for it
//!   ([`compile_search`], the handler's own compilation) on a pool built like the API's
//!   ([`pool_with`]: same size, session settings and acquire timeout), rows fetched,
//!   admitted like the API's requests (as many at once as the pool has connections).
//!   Before measuring, every request is run once both ways and their rows compared.
//! * **Load.** N workers, each sending its next request as soon as the previous one is
//!   answered; `CHRONO_LOAD_WARMUP_SECONDS` (default 2) of warm-up are not measured, then
//!   `CHRONO_LOAD_SECONDS` (default 8). Requests/s, p50 and p99 (HdrHistogram), errors
//!   (anything but a full 200 answer; a pool timeout, a 503, a reset) per level and side,
//!   the API/SQL p99 ratio and the load average, printed and written as JSON to
//!   `target/bench/load.json` (`$CARGO_TARGET_DIR/bench/`; `CHRONO_LOAD_JSON` elsewhere).
//!
//! Exits non-zero when any request failed. Needs `DATABASE_URL` with a login that may
//! create databases (the Makefile runs it under `tests/with-postgres.sh`).

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use chrono_contract::env as vars;
use chrono_runtime::api::{Admission, SearchParams, compile_search};
use chrono_runtime::auth::{DEFAULT_CASES_CLAIM, DEFAULT_ROLES_CLAIM};
use chrono_runtime::db::{ConnectPolicy, Credentials};
use chrono_runtime::filter::CompiledQuery;
use chrono_runtime::server::{LOCAL_POOL_CONNECTIONS, pool_with};
use chrono_runtime::synthetic;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Row};
use uuid::Uuid;

/// Concurrency levels, in order.
const LEVELS: [usize; 4] = [1, 8, 32, 64];
const DATABASE: &str = "chrono_load";
const ISSUER: &str = "https://issuer.load/";
const AUDIENCE: &str = "chrono-api";
/// The zone the app sends (`?tz=`).
const ZONE: &str = "Europe/Berlin";
/// Events a page, as the app asks (`PAGE_SIZE` of `app/src/views/CaseView.tsx`).
const PAGE: u32 = 500;
const KEY_PEM: &[u8] = include_bytes!("../tests/fixtures/test-jwt-key.pem");
const JWKS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-jwks.json");

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The run's size, from the environment.
#[derive(Debug, Clone, Copy)]
struct Settings {
    events: i64,
    warmup: Duration,
    measure: Duration,
}

impl Settings {
    fn from_env() -> Result<Self, BoxError> {
        fn number(
            name: &str,
            default: u64,
            range: std::ops::RangeInclusive<u64>,
        ) -> Result<u64, BoxError> {
            let Ok(text) = std::env::var(name) else {
                return Ok(default);
            };
            match text.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(format!("{name} must be a number in {range:?}, not {text:?}").into()),
            }
        }
        Ok(Settings {
            events: number("CHRONO_LOAD_EVENTS", 1_000_000, 10_000..=100_000_000)? as i64,
            warmup: Duration::from_secs(number("CHRONO_LOAD_WARMUP_SECONDS", 2, 0..=600)?),
            measure: Duration::from_secs(number("CHRONO_LOAD_SECONDS", 8, 1..=3600)?),
        })
    }
}

fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let settings = Settings::from_env()?;
    let failed = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))?;
    if failed > 0 {
        return Err(format!("{failed} requests failed (see the table)").into());
    }
    Ok(())
}

/// One search as a client sends it.
#[derive(Debug, Clone)]
struct Request {
    /// Which filter, and which page of it.
    name: String,
    /// The filter document.
    body: String,
    cursor: Option<String>,
}

impl Request {
    fn params(&self) -> SearchParams {
        SearchParams {
            cursor: self.cursor.clone(),
            tz: Some(ZONE.into()),
        }
    }

    fn query_string(&self) -> String {
        let mut q = format!("?tz={ZONE}");
        if let Some(c) = &self.cursor {
            q.push_str("&cursor=");
            q.push_str(c);
        }
        q
    }
}

/// Requests/s, latencies and failures of one side at one level.
#[derive(Debug)]
struct Outcome {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn json(&self) -> Value {
        json!({"requests_per_s": round2(self.rate), "p50_ms": round2(self.p50_ms),
               "p99_ms": round2(self.p99_ms), "requests": self.requests, "errors": self.errors,
               "first_error": self.first_error})
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn run(settings: Settings) -> Result<u64, BoxError> {
    let url = std::env::var(vars::DATABASE_URL)
        .map_err(|_| "set DATABASE_URL, or run `make bench` (private PostgreSQL cluster)")?;
    let admin_opts: PgConnectOptions = url.parse()?;
    let mut admin = admin_opts.connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
        .execute(&mut admin)
        .await?;
    let mut db_url = reqwest::Url::parse(&url)?;
    db_url.set_path(&format!("/{DATABASE}"));
    let db_url = db_url.to_string();

    let start = (Utc::now() - TimeDelta::days(30)).duration_trunc(TimeDelta::hours(1))?;
    let cases = load(&admin_opts, settings.events, start).await?;
    let case = cases[0];

    let api = ApiServer::start(&db_url)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .pool_max_idle_per_host(LEVELS[LEVELS.len() - 1])
        .timeout(Duration::from_secs(30))
        .build()?;
    api.wait_ready(&client).await?;
    let token = token(&cases[..2])?;
    let auth = format!("Bearer {token}");
    let search_url = format!("{}/api/v1/cases/{case}/events/search", api.base);

    // the bare side: a pool built as the API builds its own
    let credentials = Credentials::url(&db_url)?;
    let pool = pool_with(
        &credentials,
        LOCAL_POOL_CONNECTIONS,
        ConnectPolicy::REQUESTS,
    )
    .await?;

    let requests = requests(&client, &search_url, &auth, start).await?;
    let queries = compare(&pool, &client, &search_url, &auth, case, &requests).await?;
    eprintln!(
        "load: {} requests in the mix ({} first pages, {} next pages), rows of each equal through the API and bare SQL",
        requests.len(),
        requests.iter().filter(|r| r.cursor.is_none()).count(),
        requests.iter().filter(|r| r.cursor.is_some()).count(),
    );

    let requests = Arc::new(requests);
    let queries = Arc::new(queries);
    let mut levels = Vec::new();
    let mut failed = 0;
    println!();
    println!(
        "search under load on {} events ({}s measured per level after {}s warm-up; ms)",
        settings.events,
        settings.measure.as_secs(),
        settings.warmup.as_secs()
    );
    println!(
        "{:>5} | {:>8} {:>8} {:>8} {:>6} | {:>8} {:>8} {:>8} {:>6} | {:>9} | {:>14}",
        "conc",
        "api r/s",
        "api p50",
        "api p99",
        "errors",
        "sql r/s",
        "sql p50",
        "sql p99",
        "errors",
        "p99 ratio",
        "load avg"
    );
    // The bare side waits its turn like the API's requests do (as many at once as the pool
    // has connections), so both sides queue the same way.
    let admission = Admission::for_pool(&pool);
    for concurrency in LEVELS {
        let sql = {
            let (pool, queries) = (pool.clone(), queries.clone());
            let admission = admission.clone();
            drive(concurrency, settings, queries.len(), move |i| {
                let (pool, queries) = (pool.clone(), queries.clone());
                let admission = admission.clone();
                async move {
                    let _place = admission.enter().await.ok_or("no admission within 30 s")?;
                    let q = &queries[i];
                    let args = q.arguments().map_err(|e| e.to_string())?;
                    sqlx::query_with(&q.sql, args)
                        .fetch_all(&pool)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await
        };
        let via_api = {
            let (client, requests) = (client.clone(), requests.clone());
            let (search_url, auth) = (Arc::new(search_url.clone()), Arc::new(auth.clone()));
            drive(concurrency, settings, requests.len(), move |i| {
                let (client, requests) = (client.clone(), requests.clone());
                let (search_url, auth) = (search_url.clone(), auth.clone());
                async move {
                    let r = &requests[i];
                    let (status, body) = post(
                        &client,
                        &format!("{search_url}{}", r.query_string()),
                        &auth,
                        &r.body,
                    )
                    .await?;
                    if status != 200 {
                        return Err(format!(
                            "{}: {status} {}",
                            r.name,
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    Ok(())
                }
            })
            .await
        };
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        let ratio = via_api.p99_ms / sql.p99_ms;
        println!(
            "{concurrency:>5} | {:>8.0} {:>8.2} {:>8.2} {:>6} | {:>8.0} {:>8.2} {:>8.2} {:>6} | {:>8.2}x | {:>14}",
            via_api.rate,
            via_api.p50_ms,
            via_api.p99_ms,
            via_api.errors,
            sql.rate,
            sql.p50_ms,
            sql.p99_ms,
            sql.errors,
            ratio,
            load.join(" ")
        );
        for (side, o) in [("api", &via_api), ("sql", &sql)] {
            if let Some(e) = &o.first_error {
                println!("      {side}: {} errors, the first: {e}", o.errors);
            }
        }
        failed += via_api.errors + sql.errors;
        levels.push(
            json!({"concurrency": concurrency, "api": via_api.json(), "sql": sql.json(),
                           "p99_ratio": round2(ratio), "loadavg": load}),
        );
    }

    let report = json!({
        "benchmark": "search under load (runtime/benches/load.rs)",
        "events": settings.events,
        "warmup_s": settings.warmup.as_secs(),
        "measured_s": settings.measure.as_secs(),
        "pool_connections": LOCAL_POOL_CONNECTIONS,
        "cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        "mix": requests.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        "levels": levels,
    });
    let out = match (
        std::env::var_os("CHRONO_LOAD_JSON"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(file), _) => PathBuf::from(file),
        (None, Some(target)) => PathBuf::from(target).join("bench/load.json"),
        (None, None) => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/bench/load.json"
        )),
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, format!("{:#}\n", report))?;
    println!("written to {}", out.display());

    pool.close().await;
    drop(api);
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    Ok(failed)
}

/// Loads the cases: the bench case with `events` events over 30 days from `start`, then two
/// more with a twentieth each. Returns their ids, the bench case's first.
async fn load(
    admin: &PgConnectOptions,
    events: i64,
    start: DateTime<Utc>,
) -> Result<Vec<Uuid>, BoxError> {
    // as the owner (the migrations create the runtime's role)
    let opts = chrono_runtime::db::Session {
        statement_timeout: Duration::from_secs(600),
        lock_timeout: None,
        application: "chrono-load-bench",
        role: None,
    }
    .apply(admin.clone().database(DATABASE));
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(opts)
        .await?;
    chrono_runtime::db::MIGRATOR.run(&db).await?;
    let began = Instant::now();
    let mut cases = Vec::new();
    for (name, n) in [
        ("Load", events),
        ("Other A", events / 20),
        ("Other B", events / 20),
    ] {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO cases (id, name, created_by) VALUES ($1, $2, 'load')")
            .bind(id)
            .bind(name)
            .execute(&db)
            .await?;
        synthetic::load(&db, id, synthetic::Spec::over_30_days(n, start), |_| {}).await?;
        cases.push(id);
    }
    synthetic::analyze(&db).await?;
    db.close().await;
    eprintln!(
        "load: {} events in 3 cases loaded and analyzed in {:.1?}",
        events + 2 * (events / 20),
        began.elapsed()
    );
    Ok(cases)
}

/// The release `chrono-api serve` of this build on a free loopback port; killed when
/// dropped.
struct ApiServer {
    child: Child,
    base: String,
}

impl ApiServer {
    fn start(db_url: &str) -> Result<Self, BoxError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_chrono-api"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env(vars::DATABASE_URL, db_url)
            .env(vars::JWT_ISSUER, ISSUER)
            .env(vars::JWT_AUDIENCE, AUDIENCE)
            .env(vars::JWKS_FILE, JWKS_FILE)
            .env_remove(vars::PIPELINE_STATE_MACHINE_ARN)
            .env_remove(vars::ARTIFACTS_BUCKET)
            .env_remove(vars::SOURCES_BUCKET)
            .env_remove(vars::DB_STATEMENT_TIMEOUT_MS)
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "warn")
            .spawn()?;
        Ok(ApiServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn wait_ready(&self, client: &reqwest::Client) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match client.get(format!("{}/healthz", self.base)).send().await {
                Ok(r) if r.status() == 200 => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err("chrono-api did not answer /healthz within 60 s".into());
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST`s a search; the status and the whole body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    auth: &str,
    body: &str,
) -> Result<(u16, axum::body::Bytes), String> {
    let resp = client
        .post(url)
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok((status, body))
}

/// `request`'s answer, which must be a 200.
async fn search(
    client: &reqwest::Client,
    search_url: &str,
    auth: &str,
    request: &Request,
) -> Result<Value, BoxError> {
    let (status, answer) = post(
        client,
        &format!("{search_url}{}", request.query_string()),
        auth,
        &request.body,
    )
    .await?;
    if status != 200 {
        let answer = String::from_utf8_lossy(&answer);
        return Err(format!("{}: {status} {answer}", request.name).into());
    }
    Ok(serde_json::from_slice(&answer)?)
}

/// The mix: each filter's first page and, for some, the pages after it, with the cursors
/// the API itself returns (so they are the ones an app would send).
async fn requests(
    client: &reqwest::Client,
    search_url: &str,
    auth: &str,
    start: DateTime<Utc>,
) -> Result<Vec<Request>, BoxError> {
    let day = start + TimeDelta::days(17);
    let filters: [(&str, Value, usize); 7] = [
        ("timeline", json!({"sort": "ts_asc"}), 4),
        (
            "last 24h, newest first",
            json!({"time": {"last": "24h"}, "sort": "ts_desc"}),
            2,
        ),
        (
            "one day + identity",
            json!({"time": {"from": day.to_rfc3339(), "to": (day + TimeDelta::days(1)).to_rfc3339()},
                   "where": {"field": "identity", "op": "eq", "value": "user042"}, "sort": "ts_asc"}),
            1,
        ),
        (
            "device + action",
            json!({"where": {"all": [{"field": "device", "op": "eq", "value": "host007"},
                                     {"field": "action", "op": "eq", "value": "logon"}]},
                   "sort": "ts_asc"}),
            3,
        ),
        (
            "failed logons, newest first",
            json!({"where": {"all": [{"field": "action", "op": "eq", "value": "logon"},
                                     {"field": "outcome", "op": "eq", "value": "failure"}]},
                   "sort": "ts_desc"}),
            2,
        ),
        (
            "message contains",
            json!({"where": {"field": "message", "op": "contains", "value": "mimikatz"}, "sort": "ts_asc"}),
            2,
        ),
        (
            "tag, last 7 days",
            json!({"time": {"last": "7d"}, "where": {"field": "tag", "op": "eq", "value": "suspicious"},
                   "sort": "ts_asc"}),
            1,
        ),
    ];
    let mut out = Vec::new();
    for (name, mut doc, pages) in filters {
        doc["limit"] = json!(PAGE);
        let body = doc.to_string();
        let mut cursor = None;
        for page in 1..=pages {
            let r = Request {
                name: format!("{name}, page {page}"),
                body: body.clone(),
                cursor: cursor.take(),
            };
            let answer = search(client, search_url, auth, &r).await?;
            cursor = answer["next_cursor"].as_str().map(str::to_owned);
            out.push(r);
            if cursor.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// Each request's statement as the API compiles it, after checking that it returns the
/// rows the API returns.
async fn compare(
    pool: &PgPool,
    client: &reqwest::Client,
    search_url: &str,
    auth: &str,
    case: Uuid,
    requests: &[Request],
) -> Result<Vec<CompiledQuery>, BoxError> {
    let mut queries = Vec::with_capacity(requests.len());
    for r in requests {
        let q = compile_search(r.body.as_bytes(), case, &r.params())
            .map_err(|e| format!("{}: {e:?}", r.name))?
            .query;
        let rows = sqlx::query_with(&q.sql, q.arguments()?)
            .fetch_all(pool)
            .await?;
        let sql_ids: Vec<i64> = rows
            .iter()
            .take(q.page_size as usize)
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        let answer = search(client, search_url, auth, r).await?;
        let api_ids: Vec<i64> = answer["events"]
            .as_array()
            .map(|events| events.iter().filter_map(|e| e["id"].as_i64()).collect())
            .unwrap_or_default();
        if api_ids != sql_ids || api_ids.is_empty() {
            return Err(format!(
                "{}: the API returned {} events, bare SQL {} (or different ones)",
                r.name,
                api_ids.len(),
                sql_ids.len()
            )
            .into());
        }
        queries.push(q);
    }
    Ok(queries)
}

/// Runs `op` on the request indexes by `concurrency` closed-loop workers (worker `w`
/// starts at its share of the mix and walks on) for the warm-up and the measured time.
async fn drive<F, Fut>(concurrency: usize, settings: Settings, mix: usize, op: F) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let began = Instant::now();
    let measured_from = began + settings.warmup;
    let until = measured_from + settings.measure;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                // microseconds, 1 µs to 60 s, 3 significant digits
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .unwrap_or_else(|e| unreachable!("constant bounds: {e:?}"));
                let (mut errors, mut first_error) = (0u64, None);
                let mut i = w * mix / concurrency;
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let result = op(i % mix).await;
                    if sent >= measured_from {
                        hist.saturating_record(sent.elapsed().as_micros() as u64);
                    }
                    if let Err(e) = result {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                    i += 1;
                }
                (hist, errors, first_error)
            })
        })
        .collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|e| unreachable!("constant bounds: {e:?}"));
    let (mut errors, mut first_error) = (0, None);
    for w in workers {
        match w.await {
            Ok((h, e, first)) => {
                let _ = hist.add(&h);
                errors += e;
                if first_error.is_none() {
                    first_error = first;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("worker panicked: {e}"));
            }
        }
    }
    let window = Instant::now().saturating_duration_since(measured_from);
    Outcome {
        rate: hist.len() as f64 / window.as_secs_f64(),
        p50_ms: hist.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        requests: hist.len(),
        errors,
        first_error,
    }
}

/// An analyst's RS256 token for `cases`, signed with the test key the server trusts.
fn token(cases: &[Uuid]) -> Result<String, BoxError> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let claims = json!({
        "sub": "load-analyst", "iss": ISSUER, "aud": AUDIENCE,
        "iat": Utc::now().timestamp(), "exp": Utc::now().timestamp() + 3600,
        DEFAULT_ROLES_CLAIM: ["analyst"],
        DEFAULT_CASES_CLAIM: cases.iter().map(Uuid::to_string).collect::<Vec<_>>(),
    });
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM)?,
    )?)
}
