//! Benchmark: wall time of a fleet deploy (`chronoctl deploy --all DIR --parallel K`) of N
//! accounts against the local AWS emulator (moto), N = 1, 5, 20, to show that it grows with
//! ceil(N / K), not with N.
//!
//! The N configs are `customers/demo-local.yaml` with the customer renamed (`fleet0` ...),
//! generated into a temporary directory. moto serves one account (123456789012), so every
//! config names it: the account guard still runs (GetCallerIdentity per account) and
//! passes; the accounts differ by their stacks, bootstrap bucket and lock table. Each account
//! deploys `--stack network` (bootstrap + network, created from nothing each run: moto is
//! reset between runs) — moto cannot give the web stack's `AppOrigin` output, so the whole
//! demo plan does not complete on the emulator. Run with `make bench` (needs `make venv`);
//! `FLEET_BENCH_PARALLEL` sets K (default 5), `FLEET_BENCH_RUNS` the runs per N (default 3).
//!
//! Also N = 5 with K = 1 against K = 5. moto finishes a stack operation within the call, so
//! the accounts wait on nothing but CPU (this machine's cores and moto's one Python
//! process): the numbers show the fleet's overhead and how far parallel accounts overlap
//! here, not CloudFormation's minutes-long waits on AWS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

fn fleet(
    moto: &Moto,
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
        .args(["--endpoint-url", &moto.endpoint(), "--output", "json"])
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

fn series(
    moto: &Moto,
    root: &Path,
    runs: usize,
    poll_ms: u64,
    cases: &[(usize, usize)],
) -> Result<(), Box<dyn std::error::Error>> {
    let state = root.join("state.json");
    println!("polling every {poll_ms} ms:");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut first: Option<f64> = None;
    for &(n, k) in cases {
        let dir = configs(root, n)?;
        let mut v = Vec::new();
        for _ in 0..runs {
            moto.reset()?;
            v.push(fleet(moto, &dir, k, poll_ms, &state)?);
        }
        v.sort();
        let median = ms(v[v.len() / 2]);
        let base = *first.get_or_insert(median);
        println!(
            "  N = {n:>2}  K = {k:>2}  waves ceil(N/K) = {:>2}  runs {runs}  min {:>7.0} ms  median {:>7.0} ms  max {:>7.0} ms  = {:>5.2}x N = 1",
            n.div_ceil(k),
            ms(v[0]),
            median,
            ms(v[v.len() - 1]),
            median / base
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let k = env_usize("FLEET_BENCH_PARALLEL", 5);
    let runs = env_usize("FLEET_BENCH_RUNS", 3).max(1);
    let moto = Moto::start()?;
    let tmp = tempfile::tempdir()?;
    println!("fleet deploy (bootstrap + network per account) against moto");
    let cases = [(1, k), (5, k), (20, k), (5, 1)];
    series(&moto, tmp.path(), runs, 50, &cases)?;
    Ok(())
}
