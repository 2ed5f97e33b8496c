//! Benchmark: shipping the runtime (`make bench`).
//!
//! * build time: cold (an empty target directory: every crate compiled in the ship
//!   profile; skip with `CHRONO_BENCH_COLD=0`), warm (cargo finds nothing to do; zips and
//!   image assembled again) and cached (unchanged sources: cargo not run);
//! * sizes: each Lambda zip (goal ≤ 15 MB) and the image (goal ≤ 40 MB);
//! * Lambda start-to-ready: from starting the shipped `bootstrap` to its first
//!   `GET /2018-06-01/runtime/invocation/next` on a local stand-in of the Lambda runtime
//!   API (goal ≤ 20 ms); `chrono-api` needs `DATABASE_URL` (make bench provides one);
//! * a no-op `chronoctl deploy` of a non-local config (so it builds: from the warm build
//!   cache) against the local AWS emulator, as a whole process (goal ≤ 1 s).
//!
//! Prints the machine load before and after: numbers from a loaded machine are not the
//! machine's.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono_provisioner::build::{self, BuildOptions, BuildSpec, lambda};
use chrono_tests::moto::Moto;

const RUNS: usize = 15;

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

fn stats(name: &str, mut v: Vec<Duration>, goal: &str) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<44} runs {:>3}  min {:>9.1} ms  median {:>9.1} ms  max {:>9.1} ms  {goal}",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

/// Time from starting `exe` to its first request for an invocation on a stand-in of the
/// Lambda runtime API.
fn start_to_ready(exe: &Path, env: &[(&str, String)]) -> Result<Duration, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let ready = loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                let mut line = String::new();
                BufReader::new(&stream)
                    .read_line(&mut line)
                    .map_err(|e| e.to_string())?;
                let at = start.elapsed();
                if !line.starts_with("GET /2018-06-01/runtime/invocation/next") {
                    return Err(format!("unexpected first request: {line}"));
                }
                let mut s = stream;
                let _ =
                    s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
                break at;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    return Err(format!(
                        "exited with {status} before asking for work: {err}"
                    ));
                }
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    return Err("not ready within 30 s".into());
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    Ok(ready)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()?;
    let config = root.join("customers/acme-staging.yaml");
    let cfg = chrono_stacks::Config::load(&config)?;
    let spec = BuildSpec::for_config(&cfg)?;
    println!("load before: {}", uptime());

    if std::env::var("CHRONO_BENCH_COLD").as_deref() != Ok("0") {
        let target = tempfile::tempdir()?;
        let out = tempfile::tempdir()?;
        let mut opts = BuildOptions::new(&root, spec.arch);
        opts.out = out.path().to_path_buf();
        opts.target_dir = Some(target.path().to_path_buf());
        let t = Instant::now();
        build::run(&spec, &opts)?;
        println!(
            "{:<44} {:>9.1} s   (every crate, ship profile, empty target directory)",
            "build: cold",
            t.elapsed().as_secs_f64()
        );
    }

    // Not cargo's own target directory: `cargo bench` holds its lock while this runs.
    let mut opts = BuildOptions::new(&root, spec.arch);
    opts.target_dir = Some(
        std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), PathBuf::from)
            .join("ship-bench"),
    );
    let r = build::run(&spec, &opts)?;
    let mut warm = Vec::new();
    for _ in 0..3 {
        let out = tempfile::tempdir()?;
        let mut o = opts.clone();
        o.out = out.path().to_path_buf();
        let t = Instant::now();
        build::run(&spec, &o)?;
        warm.push(t.elapsed());
    }
    stats("build: warm (cargo up to date, packaging)", warm, "");
    let mut cached = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let again = build::run(&spec, &opts)?;
        cached.push(t.elapsed());
        assert_eq!(again.outcome, build::BuildOutcome::Cached);
    }
    stats("build: cached (unchanged sources)", cached, "");

    for (name, l) in &r.record.lambdas {
        println!(
            "{:<44} {:>9.2} MB zip ({:.2} MB binary)   goal <= 15 MB",
            format!("size: lambda {name}"),
            l.bytes as f64 / 1e6,
            l.binary_bytes as f64 / 1e6
        );
    }
    if let Some(i) = &r.record.image {
        println!(
            "{:<44} {:>9.2} MB compressed   goal <= 40 MB",
            "size: image",
            i.bytes as f64 / 1e6
        );
    }

    // Start-to-ready of each shipped function (the zip's bootstrap).
    let bins = tempfile::tempdir()?;
    // The tests' RSA key set: the authorizer refuses to start without a usable key.
    let jwks = root.join("runtime/tests/fixtures/test-jwks.json");
    for (name, l) in &r.record.lambdas {
        let zip = std::fs::read(r.out.join(&l.zip))?;
        let exe = bins.path().join(name);
        std::fs::write(&exe, lambda::bootstrap_of(&zip)?)?;
        let mut perms = std::fs::metadata(&exe)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&exe, perms)?;
        let mut env: Vec<(&str, String)> = vec![
            ("CHRONO_JWT_ISSUER", "https://issuer.example/".into()),
            ("CHRONO_JWT_AUDIENCE", "bench".into()),
            ("CHRONO_JWKS_FILE", jwks.display().to_string()),
            ("CHRONO_AI_PROVIDER", "local".into()),
        ];
        if name != "chrono-ws-authorizer" {
            match std::env::var("DATABASE_URL") {
                Ok(url) => env.push(("DATABASE_URL", url)),
                Err(_) => {
                    println!(
                        "{:<44} needs DATABASE_URL (run through make bench)",
                        format!("start-to-ready: {name}")
                    );
                    continue;
                }
            }
        }
        let mut v = Vec::new();
        for _ in 0..RUNS {
            v.push(start_to_ready(&exe, &env).map_err(|e| format!("{name}: {e}"))?);
        }
        stats(&format!("start-to-ready: {name}"), v, "goal <= 20 ms");
    }

    // A no-op deploy of a config that builds, from the warm build cache, against the
    // emulator (bootstrap and network: the emulator cannot run the rest).
    let moto = Moto::start()?;
    moto.reset()?;
    let dir = tempfile::tempdir()?;
    let files = chrono_stacks::synth::synthesize(&cfg)?;
    common::write_templates(&files, dir.path(), &["bootstrap", "network"])?;
    let deploy = || {
        Command::new(env!("CARGO_BIN_EXE_chronoctl"))
            .current_dir(&root)
            .args(["deploy", "--config"])
            .arg(&config)
            .arg("--templates")
            .arg(dir.path())
            .args(["--endpoint-url", &moto.endpoint(), "--output", "json"])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("CHRONO_POLL_MS", "5")
            .output()
    };
    let first = deploy()?;
    if !first.status.success() {
        return Err(format!(
            "initial deploy failed: {}{}",
            String::from_utf8_lossy(&first.stdout),
            String::from_utf8_lossy(&first.stderr)
        )
        .into());
    }
    let mut procs = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = deploy()?;
        procs.push(t.elapsed());
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("\"change_sets_executed\":0") {
            return Err(format!(
                "no-op deploy failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
    }
    stats(
        "no-op `chronoctl deploy` (builds, warm cache)",
        procs,
        "goal <= 1000 ms",
    );
    println!("load after: {}", uptime());
    Ok(())
}
