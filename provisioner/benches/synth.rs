//! Benchmark of the whole `chronoctl synth` process for one config (`make bench`).
//!
//! Spawns the release `chronoctl` N times on `customers/acme-prod.yaml` (all five stacks
//! plus the manifest, into a fresh directory each time) and reports wall time per process
//! (min / median / p95) and peak RSS (from `/usr/bin/time -f %M` when it exists).
//! Targets: <= 10 ms and <= 20 MB.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 50;
const RSS_RUNS: usize = 5;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chronoctl = env!("CARGO_BIN_EXE_chronoctl");
    let config = root.join("customers/acme-prod.yaml");
    let tmp = std::env::temp_dir().join(format!("chronoctl-bench-{}", std::process::id()));
    let synth_args = |out: &Path| {
        vec![
            "synth".to_owned(),
            "--config".to_owned(),
            config.display().to_string(),
            "--out".to_owned(),
            out.display().to_string(),
        ]
    };

    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        let out = tmp.join(format!("run-{i}"));
        let start = Instant::now();
        let status = Command::new(chronoctl)
            .args(synth_args(&out))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("spawn chronoctl");
        let elapsed = start.elapsed();
        assert!(status.success(), "chronoctl synth failed");
        if i > 0 {
            // Run 0 warms the page cache.
            times.push(elapsed);
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "chronoctl synth (acme-prod, 5 stacks + manifest), {RUNS} processes: min {:.2} ms, median {:.2} ms, p95 {:.2} ms (target <= 10 ms)",
        ms(times[0]),
        ms(times[RUNS / 2]),
        ms(times[RUNS * 95 / 100]),
    );

    let time_bin = Path::new("/usr/bin/time");
    if time_bin.exists() {
        let mut peak_kb = 0u64;
        for i in 0..RSS_RUNS {
            let out = tmp.join(format!("rss-{i}"));
            let output = Command::new(time_bin)
                .args(["-f", "%M"])
                .arg(chronoctl)
                .args(synth_args(&out))
                .output()
                .expect("spawn /usr/bin/time");
            assert!(
                output.status.success(),
                "chronoctl synth failed under /usr/bin/time"
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            let kb: u64 = stderr
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .expect("peak RSS from /usr/bin/time");
            peak_kb = peak_kb.max(kb);
        }
        println!(
            "chronoctl synth peak RSS: {:.1} MB (max of {RSS_RUNS} runs, target <= 20 MB)",
            peak_kb as f64 / 1024.0
        );
    } else {
        println!("peak RSS: /usr/bin/time not found; install the `time` package to measure it");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
