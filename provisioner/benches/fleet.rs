//! Benchmark: wall time of a fleet deploy (`chronoctl deploy --all DIR --parallel K`) of N
//! accounts against the local AWS emulator (moto), to show that it grows with the number of
//! waves ceil(N / K), not with N.
//!
//! The N configs are `customers/demo-local.yaml` with the customer renamed (`fleet0` ...),
//! generated into a temporary directory. moto serves one account (123456789012), so every
//! config names it: the account guard still runs (GetCallerIdentity per account) and
//! passes; the accounts differ by their stacks, bootstrap bucket and lock table. Each account
//! deploys `--stack network` (bootstrap + network, created from nothing each run: moto is
//! reset between runs) — moto cannot give the web stack's `AppOrigin` output, so the whole
//! demo plan does not complete on the emulator. Run with `make bench` (needs `make venv`).
//!
//! Latency. moto finishes every stack operation inside the call, so against moto alone the
//! accounts wait on nothing but CPU (two cores, moto's one Python process): K = 1 and K = 5
//! take about the same time and the numbers say nothing about waves. On AWS an account's
//! deploy is mostly waiting — each API call is a round trip to the region, and CloudFormation
//! reports progress only to the next `DescribeStacks`/`DescribeStackEvents` poll — and that
//! waiting is what parallel accounts overlap. So the fleet talks to moto through a small
//! reverse proxy on loopback (in this file) that holds every response for a fixed latency L
//! (`FLEET_BENCH_LATENCY_MS`, default 250 ms) before passing it on unchanged: L models one
//! AWS API round trip plus CloudFormation's wait between polls (on AWS far longer — minutes
//! per stack — which only makes the waiting share larger). With `FLEET_BENCH_LATENCY_MS=0`
//! the proxy is left out and the fleet talks to moto directly: today's CPU-bound figures.
//!
//! Rows: N = 1, 5, 20 at K (`FLEET_BENCH_PARALLEL`, default 5), N = 5 at K = 1, and N = 20
//! at K = 20; `FLEET_BENCH_RUNS` runs each (default 3). The table gives the median wall time,
//! the ideal ceil(N / K) × (the N = 1 median) and their ratio (1.00 = waves overlap
//! perfectly; N / ceil(N / K) would mean no overlap at all). One untimed deploy comes first
//! (moto loads each service's code on its first call).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use chrono_tests::moto::Moto;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes N configs into a fresh directory under `root`.
fn configs(root: &Path, n: usize) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../customers/demo-local.yaml"),
    )?;
    let dir = root.join(format!("n{n}"));
    std::fs::create_dir_all(&dir)?;
    for i in 0..n {
        let cfg = demo.replace("customer: demo\n", &format!("customer: fleet{i}\n"));
        assert!(cfg.contains(&format!("customer: fleet{i}\n")));
        std::fs::write(dir.join(format!("fleet{i}-local.yaml")), cfg)?;
    }
    Ok(dir)
}

/// Headers that belong to one hop (RFC 9110 §7.6.1), plus those the proxy's own HTTP
/// client and server set from the body they send.
const HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for h in HOP {
        out.remove(h);
    }
    out
}

/// What the proxy needs per request: where moto is, the client to reach it, the latency.
#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    latency: Duration,
}

/// Forwards one request to moto (method, path and query, headers including `Host`, body as
/// is), holds moto's answer for the latency, then returns it unchanged (status, headers,
/// body). A failure to reach moto answers 502 so the SDK reports it instead of hanging.
async fn relay(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let head = parts.method == Method::HEAD;
    let answer = async {
        let body = axum::body::to_bytes(body, usize::MAX).await?;
        let resp = up
            .client
            .request(parts.method, format!("{}{uri}", up.base))
            .headers(end_to_end(&parts.headers))
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let mut headers = end_to_end(resp.headers());
        if head {
            // a HEAD answer has no body, its Content-Length is the object's: keep it
            if let Some(len) = resp.headers().get("content-length") {
                headers.insert("content-length", len.clone());
            }
        }
        let bytes = resp.bytes().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, headers, bytes))
    }
    .await;
    tokio::time::sleep(up.latency).await;
    let (status, headers, bytes) = answer.unwrap_or_else(|e| {
        (
            StatusCode::BAD_GATEWAY,
            HeaderMap::new(),
            Bytes::from(format!("latency proxy: {e}")),
        )
    });
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// Starts the latency proxy in front of `moto` on a free loopback port; returns its URL.
fn latency_proxy(
    rt: &tokio::runtime::Runtime,
    moto: &Moto,
    latency: Duration,
) -> Result<String, Box<dyn std::error::Error>> {
    let up = Upstream {
        base: moto.endpoint(),
        client: reqwest::Client::builder().no_proxy().build()?,
        latency,
    };
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(relay).with_state(up);
    rt.spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

fn fleet(
    endpoint: &str,
    dir: &Path,
    k: usize,
    poll_ms: u64,
    state: &Path,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_chronoctl"))
        .args(["deploy", "--all"])
        .arg(dir)
        .args(["--stack", "network", "--parallel", &k.to_string()])
        .arg("--state")
        .arg(state)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CHRONO_POLL_MS", poll_ms.to_string())
        .env_remove("AWS_PROFILE")
        .output()?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "fleet failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(took)
}

/// Runs every (N, K) case `runs` times and prints the table. The first case must be N = 1:
/// its median is the time of one wave.
fn series(
    moto: &Moto,
    endpoint: &str,
    root: &Path,
    runs: usize,
    poll_ms: u64,
    cases: &[(usize, usize)],
) -> Result<(), Box<dyn std::error::Error>> {
    let state = root.join("state.json");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut one: Option<f64> = None;
    println!(
        "  {:>3} {:>3} {:>6} {:>10} {:>10} {:>10} {:>10} {:>6}",
        "N", "K", "waves", "min ms", "median ms", "max ms", "ideal ms", "ratio"
    );
    for &(n, k) in cases {
        let dir = configs(root, n)?;
        let mut v = Vec::new();
        for _ in 0..runs {
            moto.reset()?;
            v.push(fleet(endpoint, &dir, k, poll_ms, &state)?);
        }
        v.sort();
        let median = ms(v[v.len() / 2]);
        let waves = n.div_ceil(k);
        let ideal = waves as f64 * *one.get_or_insert(median);
        println!(
            "  {n:>3} {k:>3} {waves:>6} {:>10.0} {median:>10.0} {:>10.0} {ideal:>10.0} {:>6.2}",
            ms(v[0]),
            ms(v[v.len() - 1]),
            median / ideal
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let k = env_usize("FLEET_BENCH_PARALLEL", 5).max(1);
    let runs = env_usize("FLEET_BENCH_RUNS", 3).max(1);
    let latency = Duration::from_millis(env_usize("FLEET_BENCH_LATENCY_MS", 250) as u64);
    let moto = Moto::start()?;
    let tmp = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let endpoint = if latency.is_zero() {
        moto.endpoint()
    } else {
        latency_proxy(&rt, &moto, latency)?
    };
    let how = if latency.is_zero() {
        "directly (no latency proxy)".to_string()
    } else {
        format!(
            "through the proxy, every response held {} ms",
            latency.as_millis()
        )
    };
    println!(
        "fleet deploy (bootstrap + network per account) against moto {how}, polling every 50 ms"
    );
    // one untimed deploy first: moto loads each service's code on its first call
    moto.reset()?;
    fleet(
        &endpoint,
        &configs(tmp.path(), 1)?,
        1,
        50,
        &tmp.path().join("state.json"),
    )?;
    let cases = [(1, k), (5, k), (20, k), (5, 1), (20, 20)];
    series(&moto, &endpoint, tmp.path(), runs, 50, &cases)?;
    Ok(())
}
